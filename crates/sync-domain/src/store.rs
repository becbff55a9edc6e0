//! Data access: row structs and synchronous functions over `&mut DbConnection`.
//!
//! Every function takes the connection of the caller's transaction (see
//! [`Database::write_tx`](crate::Database::write_tx)), so the engine composes them into one
//! atomic push. Every tenant-owned query filters on `tenant_id` first. Conventions:
//!
//! - ids are `String` (UUIDs as text); times are `i64` microseconds since the Unix epoch (UTC),
//!   see [`crate::micros`], and always arguments: the store never reads the clock;
//! - JSON columns are `String` holding JSON text (the engine parses only what it needs, and a
//!   pull can pass stored data through unparsed); typed helpers parse them where useful;
//! - enum-like text columns are typed Rust enums ([`Role`], [`ConflictStatus`], …), guarded by
//!   `CHECK` constraints in the database; the protocol's own word lists (sync-conflict's
//!   [`Policy`], [`Resolution`], [`Winner`], [`ConflictStatus`]) are stored through [`Word`];
//! - batched reads and writes chunk their input so that no statement exceeds the backends'
//!   bound-parameter limits.

mod activity;
mod analytics;
mod conflicts;
mod devices;
mod idempotency;
mod insight;
mod records;
mod tenants;

use std::fmt;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;
/// The protocol's conflict words, which the conflict log's rows hold.
pub use sync_conflict::{ConflictStatus, Policy, Resolution, Winner};

pub use activity::{count_active_devices, list_device_health, recent_device_sync_events};
pub use analytics::{
    AlertRow, SnapshotRow, SyncEventKind, SyncEventRow, insert_alert, insert_snapshot, insert_sync_event,
    latest_snapshot, list_alerts, list_snapshots, list_sync_events,
};
pub use conflicts::{
    ConflictQuery, ConflictRow, PolicyRow, conflict_counts_by_domain, delete_policy, get_conflict,
    get_policies, get_policy, insert_conflict, insert_conflicts, list_conflicts, mark_conflict_resolved,
    upsert_policy,
};
pub use devices::{
    DeviceHealthRow, DeviceRow, get_device, get_device_health, list_device_health_below,
    oldest_active_cursor, set_device_cursor, set_device_time_per_item, upsert_device, upsert_device_health,
};
pub use idempotency::{IdempotencyRow, get_idempotency, purge_expired_idempotency, put_idempotency};
pub use insight::{
    AnomalyRow, BasisName, DeliveryRow, DeliveryStatus, EditLite, EventLite, EventName, MetricName,
    RiskModelRow, RiskScoreRow, SeverityName, SyncWindowRow, WebhookRow, conflicts_since, delete_webhook,
    due_deliveries, edits_since, events_between, finish_delivery, get_delivery, get_risk_model,
    get_sync_window, get_webhook, insert_anomaly, insert_deliveries, list_anomalies, list_deliveries,
    list_webhooks, open_anomalies, queued_events, replace_risk_scores, replace_sync_windows, risks_of,
    set_webhook_queued_until, top_risk_scores, units_since, update_anomaly, upsert_risk_model,
    upsert_webhook,
};
pub use records::{
    PriorityText, PullFilter, PurgeStats, RecordKey, RecordRow, VersionRow, allocate_seqs, by_key_sql,
    count_after, current_seq, estimate_after, explain_pull_page, get_purge_mark, get_records,
    get_records_for_update, get_versions, insert_versions, pull_page, purge, raw_upsert_baseline,
    superseded_versions, tenant_history, upsert_records, versions_as_of,
};
pub use tenants::{
    ActiveToken, LAST_USED_RESOLUTION_MICROS, Principal, Role, TOKEN_PREFIX, TokenRow, UserRow,
    authenticate_token, create_token, ensure_tenant, get_user, hash_token, list_tokens, lookup_token,
    revoke_token, revoke_token_id, revoke_user_tokens, tenant_ids, token_by_id, upsert_user,
};

/// `EXPLAIN` of a statement (PostgreSQL: one row of text per line of the plan), so that tests
/// read the plans of the statements the store really runs.
#[derive(Debug, Clone, Copy, diesel::query_builder::QueryId)]
struct Explain<Q>(Q);

impl<Q, DB> diesel::query_builder::QueryFragment<DB> for Explain<Q>
where
    DB: diesel::backend::Backend,
    Q: diesel::query_builder::QueryFragment<DB>,
{
    fn walk_ast<'b>(
        &'b self,
        mut out: diesel::query_builder::AstPass<'_, 'b, DB>,
    ) -> diesel::QueryResult<()> {
        out.push_sql("EXPLAIN ");
        self.0.walk_ast(out.reborrow())
    }
}

impl<Q> diesel::query_builder::Query for Explain<Q> {
    type SqlType = diesel::sql_types::Text;
}

impl<Q, C> diesel::query_dsl::RunQueryDsl<C> for Explain<Q> {}

/// Most bound parameters per statement we allow ourselves: below SQLite's default limit
/// (32766) and PostgreSQL's (65535), with room to spare.
const MAX_BINDS: usize = 30_000;

/// Rows per multi-row `INSERT` for a table with `columns` columns.
const fn rows_per_insert(columns: usize) -> usize {
    MAX_BINDS / columns
}

/// Keys per batched lookup (each key binds one or two values, plus the tenant).
const KEYS_PER_LOOKUP: usize = 500;

/// Error for a text value that names no variant of an enum column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVariant {
    /// The enum's name.
    pub kind: &'static str,
    /// The text that matched no variant.
    pub value: String,
}

impl fmt::Display for UnknownVariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} {:?}", self.kind, self.value)
    }
}

impl std::error::Error for UnknownVariant {}

/// A closed word list of another crate, stored as TEXT by its words.
pub trait StoredWord: Copy + fmt::Debug + 'static {
    /// The stored text.
    fn word(self) -> &'static str;
    /// The value `text` stores, if any (exact match: the database holds what [`Self::word`]
    /// wrote).
    fn from_word(text: &str) -> Option<Self>;
}

/// The TEXT column form of a [`StoredWord`]. diesel's `FromSql`/`ToSql` cannot be implemented
/// for another crate's type, so row structs keep that type and name this wrapper in
/// `#[diesel(deserialize_as = Word<T>, serialize_as = Word<T>)]`; filters compare with
/// `column.eq(Word(value))`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = Text)]
pub struct Word<T: StoredWord>(pub T);

impl<T: StoredWord> From<T> for Word<T> {
    fn from(value: T) -> Self {
        Word(value)
    }
}

impl<T: StoredWord, DB> ToSql<Text, DB> for Word<T>
where
    DB: Backend,
    str: ToSql<Text, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        <str as ToSql<Text, DB>>::to_sql(self.0.word(), out)
    }
}

impl<T: StoredWord, DB> FromSql<Text, DB> for Word<T>
where
    DB: Backend,
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        let text = <String as FromSql<Text, DB>>::from_sql(bytes)?;
        match T::from_word(&text) {
            Some(value) => Ok(Word(value)),
            None => Err(Box::new(UnknownVariant { kind: std::any::type_name::<T>(), value: text })),
        }
    }
}

/// [`StoredWord`] for sync-conflict's word lists, and the conversion diesel's
/// `deserialize_as` calls (`From<Word<T>> for T`, which the orphan rule allows per type).
macro_rules! stored_words {
    ($($ty:ty),+ $(,)?) => {$(
        impl StoredWord for $ty {
            fn word(self) -> &'static str {
                self.as_str()
            }

            fn from_word(text: &str) -> Option<Self> {
                <$ty>::ALL.iter().copied().find(|v| v.as_str() == text)
            }
        }

        impl From<Word<$ty>> for $ty {
            fn from(word: Word<$ty>) -> Self {
                word.0
            }
        }
    )+};
}

stored_words!(Policy, Resolution, Winner, ConflictStatus);

/// Defines an enum stored as TEXT: `as_str`, `FromStr`, `Display`, serde, and diesel
/// `ToSql`/`FromSql` for every backend (including `MultiBackend`).
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant ),+
        }

        impl $name {
            /// Every variant.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored (and wire) text.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::store::UnknownVariant;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::store::UnknownVariant { kind: stringify!($name), value: s.to_owned() }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<DB> diesel::serialize::ToSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            str: diesel::serialize::ToSql<diesel::sql_types::Text, DB>,
        {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, DB>,
            ) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, DB>>::to_sql(self.as_str(), out)
            }
        }

        impl<DB> diesel::deserialize::FromSql<diesel::sql_types::Text, DB> for $name
        where
            DB: diesel::backend::Backend,
            String: diesel::deserialize::FromSql<diesel::sql_types::Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> diesel::deserialize::Result<Self> {
                let text =
                    <String as diesel::deserialize::FromSql<diesel::sql_types::Text, DB>>::from_sql(bytes)?;
                Ok(text.parse::<$name>()?)
            }
        }
    };
}
pub(crate) use text_enum;

/// Parses an optional JSON array of strings (the `units` columns).
fn parse_units(units: Option<&str>) -> crate::Result<Option<Vec<String>>> {
    units.map(serde_json::from_str::<Vec<String>>).transpose().map_err(Into::into)
}

/// Encodes units as a JSON array (`None` = every unit).
fn encode_units(units: Option<&[String]>) -> Option<String> {
    // Serialising a slice of strings cannot fail.
    units.map(|u| serde_json::to_string(u).unwrap_or_else(|_| "[]".to_owned()))
}
