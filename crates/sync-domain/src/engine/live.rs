//! What live streams read besides pulls: the admin events (new conflicts and alerts) of a
//! tenant since a moment, and a device's acknowledged cursor.

use std::collections::HashMap;

use sync_conflict::TenantPolicy;

use super::{
    SyncEngine,
    admin::{ConflictView, conflict_view, require_admin},
    analytics::{AlertView, alert_view},
    pull::parse_cursor,
    push::check_device_id,
};
use crate::{
    Result, micros,
    store::{self, ConflictQuery, Principal, Resolution},
};

/// Most admin events read at once.
const MAX_ADMIN_EVENTS: i64 = 500;

/// Whether each domain with a tenant policy tells admins of every conflict
/// (`notify_on_conflict`); `manual_required` conflicts are always told.
pub(super) fn notified_domains(
    conn: &mut crate::DbConnection,
    tenant: &str,
) -> Result<HashMap<String, bool>> {
    Ok(store::get_policies(conn, tenant)?
        .into_iter()
        .filter_map(|p| {
            let policy = p.policy.parse().ok()?;
            let policy = TenantPolicy::new(policy, p.auto_resolve, p.notify_on_conflict).ok()?;
            Some((p.domain, policy.notify_on_conflict()))
        })
        .collect())
}

/// New conflicts and alerts for a tenant's admins, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AdminEvents {
    pub conflicts: Vec<ConflictView>,
    pub alerts: Vec<AlertView>,
}

impl SyncEngine {
    /// The conflicts admins are told of (every `manual_required` one, and every one of a
    /// domain whose policy has `notify_on_conflict`) and the alerts created at or after
    /// `since_us` (µs), oldest first (admin).
    pub async fn admin_events_since(&self, principal: &Principal, since_us: i64) -> Result<AdminEvents> {
        require_admin(principal)?;
        let tenant = principal.tenant.clone();
        self.db
            .read_tx(move |conn| {
                let notify = notified_domains(conn, &tenant)?;
                let query = ConflictQuery {
                    since: Some(since_us),
                    limit: Some(MAX_ADMIN_EVENTS),
                    ..ConflictQuery::default()
                };
                let mut conflicts = store::list_conflicts(conn, &tenant, &query)?
                    .into_iter()
                    .filter(|c| {
                        c.result == Resolution::ManualRequired
                            || notify.get(&c.domain).copied().unwrap_or(false)
                    })
                    .map(conflict_view)
                    .collect::<Result<Vec<_>>>()?;
                conflicts.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
                let mut alerts = store::list_alerts(conn, &tenant, since_us, MAX_ADMIN_EVENTS)?
                    .into_iter()
                    .map(alert_view)
                    .collect::<Result<Vec<_>>>()?;
                alerts.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
                Ok(AdminEvents { conflicts, alerts })
            })
            .await
    }

    /// Remembers `cursor` as the device's download position, as a pull with `device_id` does
    /// (a live stream's acknowledgement). A cursor this server did not make is a 400.
    pub async fn remember_cursor(&self, principal: &Principal, device_id: &str, cursor: &str) -> Result<()> {
        check_device_id(device_id)?;
        let seq = parse_cursor(Some(cursor))?.seq();
        let principal = principal.clone();
        let device = device_id.to_owned();
        self.retrying_write(move |conn| {
            store::set_device_cursor(conn, &principal.tenant, &device, &principal.user, seq, micros::now())
        })
        .await
    }

    /// Checks a pull's filters without reading: the cursor's form and the domains' names
    /// (what a live stream refuses with 400 before it starts).
    pub fn check_pull_filters(&self, cursor: Option<&str>, domains: Option<&[String]>) -> Result<()> {
        parse_cursor(cursor)?;
        self.check_domains(domains)
    }
}
