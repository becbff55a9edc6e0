//! Diesel table definitions, shared by both backends (kept in step with `migrations/`).
//!
//! Column types are the portable subset: `Text` for ids, enums and JSON, `BigInt` for counters
//! and times (microseconds since the Unix epoch, UTC), `Bool` and `Double`. The migration
//! tests check that every table and column here exists on SQLite and on PostgreSQL.

diesel::table! {
    /// One row per tenant (created by `store::ensure_tenant` and `store::create_token`).
    tenants (id) {
        id -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// The per-tenant change sequence: the last sequence number handed out.
    change_counters (tenant_id) {
        tenant_id -> Text,
        last_seq -> BigInt,
    }
}

diesel::table! {
    /// Users of a tenant: a role and the business units they are limited to (JSON array or NULL).
    users (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        role -> Text,
        units -> Nullable<Text>,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Hashed API tokens: the one global (reference) table, looked up before the tenant is known.
    api_tokens (token_hash) {
        token_hash -> Text,
        tenant_id -> Text,
        user_id -> Text,
        role -> Text,
        units -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> Nullable<BigInt>,
        revoked -> Bool,
        /// The token's public id (shown by `token list`, taken by `token revoke ID`).
        id -> Text,
        revoked_at -> Nullable<BigInt>,
        /// Last authenticated request (µs), updated at most once a minute.
        last_used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    /// Devices with their remembered pull cursor and measured download speed.
    devices (tenant_id, device_id) {
        tenant_id -> Text,
        device_id -> Text,
        user_id -> Text,
        cursor_seq -> Nullable<BigInt>,
        last_seen_at -> BigInt,
        avg_ms_per_item -> Nullable<Double>,
    }
}

diesel::table! {
    /// The latest state of every record (tombstones included until purged).
    records (tenant_id, domain, mobile_id) {
        tenant_id -> Text,
        domain -> Text,
        mobile_id -> Text,
        version -> BigInt,
        data -> Text,
        deleted -> Bool,
        modified_at -> BigInt,
        server_modified_at -> BigInt,
        modified_by_device -> Text,
        bu -> Nullable<Text>,
        priority -> Text,
        seq -> BigInt,
    }
}

diesel::table! {
    /// Record history: one row per version, for three-way merges and deltas.
    record_versions (tenant_id, domain, mobile_id, version) {
        tenant_id -> Text,
        domain -> Text,
        mobile_id -> Text,
        version -> BigInt,
        data -> Text,
        deleted -> Bool,
        modified_at -> BigInt,
        server_modified_at -> BigInt,
        modified_by_device -> Text,
        seq -> BigInt,
        created_at -> BigInt,
        bu -> Nullable<Text>,
    }
}

diesel::table! {
    /// Stored push responses, replayed for a repeated idempotency key.
    idempotency_keys (tenant_id, user_id, device_id, key) {
        tenant_id -> Text,
        user_id -> Text,
        device_id -> Text,
        key -> Text,
        request_hash -> Text,
        response -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Per tenant: history and tombstones below this sequence number were purged.
    purge_marks (tenant_id) {
        tenant_id -> Text,
        purged_below_seq -> BigInt,
        purged_at -> BigInt,
    }
}

diesel::table! {
    /// The conflict log, including manual conflicts waiting for an admin.
    conflicts (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        domain -> Text,
        mobile_id -> Text,
        server_version -> BigInt,
        client_base_version -> BigInt,
        client_version -> Nullable<BigInt>,
        strategy -> Text,
        result -> Text,
        winner -> Text,
        details -> Text,
        device_id -> Text,
        user_id -> Text,
        created_at -> BigInt,
        status -> Text,
        client_state -> Nullable<Text>,
        server_state -> Nullable<Text>,
        resolved_at -> Nullable<BigInt>,
        resolved_by -> Nullable<Text>,
    }
}

diesel::table! {
    /// A tenant's override of a domain's conflict policy.
    tenant_policies (tenant_id, domain) {
        tenant_id -> Text,
        domain -> Text,
        policy -> Text,
        auto_resolve -> Bool,
        notify_on_conflict -> Bool,
        updated_at -> BigInt,
    }
}

diesel::table! {
    /// Per-device sync health, updated on every push and pull.
    device_health (tenant_id, device_id) {
        tenant_id -> Text,
        device_id -> Text,
        user_id -> Text,
        total_syncs -> BigInt,
        failed_syncs_count -> BigInt,
        avg_sync_duration_ms -> Double,
        conflicts_encountered -> BigInt,
        last_sync_at -> Nullable<BigInt>,
        network_type -> Nullable<Text>,
        clock_skew_ms -> BigInt,
        health_score -> Double,
    }
}

diesel::table! {
    /// One event per push, pull, partial sync or conflict resolution: the analytics source.
    sync_events (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        at -> BigInt,
        device_id -> Text,
        user_id -> Text,
        kind -> Text,
        success -> Bool,
        duration_ms -> Double,
        changes -> BigInt,
        conflicts -> BigInt,
        auto_resolved -> BigInt,
        manual -> BigInt,
        bytes_raw -> BigInt,
        bytes_sent -> BigInt,
        domains -> Text,
    }
}

diesel::table! {
    /// Analytics snapshots (the body is the snapshot JSON).
    snapshots (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        created_at -> BigInt,
        window_hours -> BigInt,
        body -> Text,
    }
}

diesel::table! {
    /// Alerts raised on snapshots or health checks.
    alerts (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        snapshot_id -> Nullable<Text>,
        rule -> Text,
        severity -> Text,
        value -> Double,
        threshold -> Double,
        message -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Anomalies found in the sync-event series (PROTOCOL.md section 12).
    anomalies (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        metric -> Text,
        scope_device -> Nullable<Text>,
        scope_domain -> Nullable<Text>,
        observed -> Double,
        expected -> Double,
        band_low -> Double,
        band_high -> Double,
        score -> Double,
        severity -> Text,
        window_start -> BigInt,
        window_end -> BigInt,
        explanation -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    /// Each tenant's latest conflict-risk model (the serialised `sync_insight::Model`).
    risk_models (tenant_id) {
        tenant_id -> Text,
        trained_at -> BigInt,
        examples -> BigInt,
        holdout_auc -> Nullable<Double>,
        baseline_auc -> Nullable<Double>,
        model -> Text,
    }
}

diesel::table! {
    /// The latest conflict risk of each recently active record (reasons as JSON text).
    risk_scores (tenant_id, domain, mobile_id) {
        tenant_id -> Text,
        domain -> Text,
        mobile_id -> Text,
        risk -> Double,
        reasons -> Text,
        scored_at -> BigInt,
    }
}

diesel::table! {
    /// Each device's planned sync hour (device id `""`: the fleet's advice for a new device).
    sync_windows (tenant_id, device_id) {
        tenant_id -> Text,
        device_id -> Text,
        hour -> BigInt,
        minutes -> BigInt,
        confidence -> Double,
        basis -> Text,
        planned_at -> BigInt,
    }
}

diesel::table! {
    /// Webhooks: where a tenant's alerts, anomalies and conflicts are POSTed.
    webhooks (tenant_id, name) {
        tenant_id -> Text,
        name -> Text,
        url -> Text,
        secret -> Text,
        /// JSON array of event names.
        events -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        /// Events created before this moment (µs) are queued for delivery.
        queued_until -> BigInt,
    }
}

diesel::table! {
    /// The delivery log: one row per attempt (a pending row is an attempt still to make).
    webhook_deliveries (tenant_id, id) {
        tenant_id -> Text,
        id -> Text,
        webhook -> Text,
        event -> Text,
        event_id -> Text,
        body -> Text,
        attempt -> BigInt,
        state -> Text,
        first_at -> BigInt,
        due_at -> BigInt,
        attempted_at -> Nullable<BigInt>,
        status_code -> Nullable<BigInt>,
        error -> Nullable<Text>,
        next_retry_at -> Nullable<BigInt>,
    }
}

/// Every table, in creation order (used by the schema tests).
pub const ALL_TABLES: &[&str] = &[
    "tenants",
    "change_counters",
    "users",
    "api_tokens",
    "devices",
    "records",
    "record_versions",
    "idempotency_keys",
    "purge_marks",
    "conflicts",
    "tenant_policies",
    "device_health",
    "sync_events",
    "snapshots",
    "alerts",
    "anomalies",
    "risk_models",
    "risk_scores",
    "sync_windows",
    "webhooks",
    "webhook_deliveries",
];

diesel::allow_tables_to_appear_in_same_query!(records, record_versions);
