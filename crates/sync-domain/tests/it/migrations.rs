//! Migrations: up, down all, up again on both backends; the diesel schema matches the DDL.

use diesel::prelude::*;
use sync_domain::schema::{self, ALL_TABLES};
use sync_domain::store::{
    AlertRow, AnomalyRow, ConflictRow, DeliveryRow, DeviceHealthRow, DeviceRow, IdempotencyRow, PolicyRow,
    RecordRow, RiskModelRow, RiskScoreRow, SnapshotRow, SyncEventRow, SyncWindowRow, UserRow, VersionRow,
    WebhookRow,
};
use sync_domain::{Backend, Database, DbConnection};

#[derive(QueryableByName)]
struct Name {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
}

/// Our tables (without diesel's bookkeeping table), sorted.
pub fn tables(db: &Database) -> Vec<String> {
    let mut names: Vec<String> = db
        .run_sync(|conn| {
            Ok(match conn {
                DbConnection::Sqlite(c) => diesel::sql_query(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
                )
                .load::<Name>(c)?,
                DbConnection::Pg(c) => {
                    diesel::sql_query("SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema()")
                        .load::<Name>(c)?
                }
            })
        })
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .filter(|n| n != "__diesel_schema_migrations")
        .collect();
    names.sort();
    names
}

/// Selects every column of every table through the diesel schema, so that a column missing
/// or mistyped in a migration fails here.
fn schema_matches(db: &Database) {
    db.run_sync(|c| {
        use schema::*;
        tenants::table.select(tenants::all_columns).limit(0).load::<(String, i64)>(c)?;
        change_counters::table.select(change_counters::all_columns).limit(0).load::<(String, i64)>(c)?;
        users::table.select(UserRow::as_select()).limit(0).load(c)?;
        api_tokens::table.select(api_tokens::all_columns).limit(0).load::<(
            String,
            String,
            String,
            String,
            Option<String>,
            i64,
            Option<i64>,
            bool,
            String,
            Option<i64>,
            Option<i64>,
        )>(c)?;
        devices::table.select(DeviceRow::as_select()).limit(0).load(c)?;
        records::table.select(RecordRow::as_select()).limit(0).load(c)?;
        record_versions::table.select(VersionRow::as_select()).limit(0).load(c)?;
        idempotency_keys::table.select(IdempotencyRow::as_select()).limit(0).load(c)?;
        purge_marks::table.select(purge_marks::all_columns).limit(0).load::<(String, i64, i64)>(c)?;
        conflicts::table.select(ConflictRow::as_select()).limit(0).load(c)?;
        tenant_policies::table.select(PolicyRow::as_select()).limit(0).load(c)?;
        device_health::table.select(DeviceHealthRow::as_select()).limit(0).load(c)?;
        sync_events::table.select(SyncEventRow::as_select()).limit(0).load(c)?;
        snapshots::table.select(SnapshotRow::as_select()).limit(0).load(c)?;
        alerts::table.select(AlertRow::as_select()).limit(0).load(c)?;
        anomalies::table.select(AnomalyRow::as_select()).limit(0).load(c)?;
        risk_models::table.select(RiskModelRow::as_select()).limit(0).load(c)?;
        risk_scores::table.select(RiskScoreRow::as_select()).limit(0).load(c)?;
        sync_windows::table.select(SyncWindowRow::as_select()).limit(0).load(c)?;
        webhooks::table.select(WebhookRow::as_select()).limit(0).load(c)?;
        webhook_deliveries::table.select(DeliveryRow::as_select()).limit(0).load(c)?;
        Ok(())
    })
    .unwrap();
}

async fn round_trip(db: Database) {
    let mut expected: Vec<String> = ALL_TABLES.iter().map(|t| (*t).to_owned()).collect();
    expected.sort();
    assert_eq!(tables(&db), expected);
    schema_matches(&db);
    let ready = db.ping().await.unwrap();
    assert!(ready.migrations_current, "{ready:?}");

    let reverted = db.revert_all_migrations().unwrap();
    assert_eq!(reverted.len(), 9);
    assert!(tables(&db).is_empty(), "left after down: {:?}", tables(&db));
    let ready = db.ping().await.unwrap();
    assert!(!ready.migrations_current);
    assert_eq!(ready.pending.len(), 9);

    let applied = db.migrate().unwrap();
    assert_eq!(applied.len(), 9);
    assert_eq!(tables(&db), expected);
    schema_matches(&db);
    assert!(db.ping().await.unwrap().migrations_current);
    // Nothing left to apply.
    assert!(db.migrate().unwrap().is_empty());
}

/// Migration `superseded_history` moves history to superseded versions only: a record's current
/// version leaves `record_versions` (it is the record's row), and going down puts it back.
async fn superseded_history_keeps_only_replaced_versions(db: Database) {
    use diesel_migrations::MigrationHarness;
    use sync_domain::db::{POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};
    use sync_domain::store::{self, RecordKey};
    let revert_last = |db: &Database| {
        db.run_sync(|conn| {
            let reverted = match conn {
                DbConnection::Sqlite(c) => c.revert_last_migration(SQLITE_MIGRATIONS),
                DbConnection::Pg(c) => c.revert_last_migration(POSTGRES_MIGRATIONS),
            }
            .map_err(sync_domain::Error::Migration)?;
            Ok(reverted.to_string())
        })
        .unwrap()
    };
    let history = |db: &Database| -> Vec<(String, i64)> {
        db.run_sync(|c| {
            Ok(schema::record_versions::table
                .select((schema::record_versions::mobile_id, schema::record_versions::version))
                .order((schema::record_versions::mobile_id, schema::record_versions::version))
                .load(c)?)
        })
        .unwrap()
    };
    assert_eq!(revert_last(&db).replace('-', ""), "20261205000001");
    // As the earlier schema wrote them: every version in history, the current one too.
    let row = |id: &str, version: i64, seq: i64| RecordRow {
        tenant_id: "t".into(),
        domain: "task".into(),
        mobile_id: id.into(),
        version,
        data: format!(r#"{{"title":"{id} v{version}"}}"#),
        deleted: false,
        modified_at: seq,
        server_modified_at: seq,
        modified_by_device: "d".into(),
        bu: None,
        priority: sync_model::Priority::Medium,
        seq,
    };
    let (a1, a2, b1) = (row("a", 1, 1), row("a", 2, 3), row("b", 1, 2));
    let versions = [&a1, &a2, &b1].map(RecordRow::to_version);
    let current = [a2.clone(), b1.clone()];
    db.write_tx_sync(|c| {
        store::insert_versions(c, &versions)?;
        store::upsert_records(c, &current)
    })
    .unwrap();

    assert_eq!(db.migrate().unwrap().len(), 1);
    assert_eq!(history(&db), [("a".to_owned(), 1)]);
    // Every version is still readable, the current ones from `records`.
    let all = db.run_sync(|c| store::tenant_history(c, "t")).unwrap();
    assert_eq!(all, [&a1, &a2, &b1].map(RecordRow::to_version));
    let wanted = [(RecordKey::new("task", "a"), 2), (RecordKey::new("task", "a"), 1)];
    assert_eq!(db.run_sync(|c| store::get_versions(c, "t", &wanted)).unwrap().len(), 2);

    assert_eq!(revert_last(&db).replace('-', ""), "20261205000001");
    assert_eq!(history(&db), [("a".to_owned(), 1), ("a".to_owned(), 2), ("b".to_owned(), 1)]);
    assert_eq!(db.migrate().unwrap().len(), 1);
}

sync_domain::backend_tests!(round_trip, superseded_history_keeps_only_replaced_versions);

#[test]
fn both_backends_have_the_same_migrations() {
    let names = |dir: &str| {
        let mut v: Vec<String> =
            std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
        v.sort();
        v
    };
    assert_eq!(names("sqlite"), names("postgres"));
    assert_eq!(names("sqlite").len(), 9);
}

#[test]
fn memory_database_migrates_and_keeps_its_data() {
    let db = Database::connect("sqlite::memory:", Default::default()).unwrap();
    assert_eq!(db.backend(), Backend::Sqlite);
    db.migrate().unwrap();
    db.write_tx_sync(|c| sync_domain::store::ensure_tenant(c, "t1", 1)).unwrap();
    assert_eq!(db.run_sync(sync_domain::store::tenant_ids).unwrap(), vec!["t1".to_owned()]);
}

#[test]
fn bad_urls_and_unreachable_servers_are_told_apart() {
    let err = Database::connect("mysql://localhost/x", Default::default()).unwrap_err();
    assert!(matches!(err, sync_domain::Error::InvalidUrl(_)), "{err}");
    // Nothing listens on port 1: connection refused, reported as unavailable (503).
    let opts = sync_domain::ConnectOptions {
        connection_timeout: std::time::Duration::from_millis(500),
        ..Default::default()
    };
    let err = Database::connect("postgres://postgres@127.0.0.1:1/postgres", opts.clone()).unwrap_err();
    assert!(err.is_unavailable(), "{err}");
    // A lazy pool connects, and reports the same on first use.
    let db = Database::connect(
        "postgres://postgres@127.0.0.1:1/postgres",
        sync_domain::ConnectOptions { check_on_connect: false, ..opts },
    )
    .unwrap();
    assert!(db.ping_sync().unwrap_err().is_unavailable());
    assert!(db.run_sync(|_| Ok(())).unwrap_err().is_unavailable());
}

#[derive(QueryableByName)]
struct PlanStep {
    #[diesel(sql_type = diesel::sql_types::Text)]
    detail: String,
}

/// A new SQLite database (no rows, so nothing for `ANALYZE` to find) must still look records
/// and versions up by key when a lookup spans several domains, not read the whole tenant
/// through the `(tenant_id, seq)` index.
/// A SQLite file that cannot be written is refused at once, with its path and the reason,
/// rather than after the pool's timeout as "unable to open database file". (A directory stands
/// in for a read-only file here: as root, a file's mode does not stop writes;
/// docs/reliability.md shows the same on a read-only mount.)
#[test]
fn an_unwritable_sqlite_file_is_refused_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().display().to_string();
    let err = Database::connect(&format!("sqlite://{path}"), Default::default()).unwrap_err();
    assert!(matches!(err, sync_domain::Error::StorageFull(_)), "{err}");
    assert!(err.to_string().contains(&path), "{err}");
    assert_eq!(err.http_status(), 503);
}

#[test]
fn fresh_sqlite_looks_records_up_by_key() {
    if !sync_domain::testing::backend_selected(Backend::Sqlite) {
        return;
    }
    let test = sync_domain::testing::TestDb::sqlite();
    let plan = |sql: String| -> String {
        test.database()
            .run_sync(move |conn| {
                let DbConnection::Sqlite(c) = conn else { unreachable!("a SQLite test database") };
                Ok(diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}")).load::<PlanStep>(c)?)
            })
            .unwrap()
            .into_iter()
            .map(|s| s.detail)
            .collect::<Vec<_>>()
            .join("; ")
    };
    let by_key = |table: &str, extra: &str| {
        format!(
            "SELECT * FROM {table} WHERE (tenant_id = 't' AND domain = 'task' AND mobile_id IN ('a', 'b'){extra}) \
             OR (tenant_id = 't' AND domain = 'ticket' AND mobile_id IN ('c', 'd'){extra})"
        )
    };
    let records = plan(by_key("records", ""));
    assert!(records.contains("sqlite_autoindex_records_1") && !records.contains("tenant_seq"), "{records}");
    let versions = plan(by_key("record_versions", " AND version = 2"));
    assert!(
        versions.contains("sqlite_autoindex_record_versions_1") && !versions.contains("tenant_seq"),
        "{versions}"
    );
    // The pull's page still walks the sequence index.
    let page = plan("SELECT * FROM records WHERE tenant_id = 't' AND seq > 10 ORDER BY seq LIMIT 100".into());
    assert!(page.contains("records_tenant_seq"), "{page}");
}

#[derive(Debug, QueryableByName)]
struct StatisticsTarget {
    #[diesel(sql_type = diesel::sql_types::Text)]
    name: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    target: i64,
}

#[derive(QueryableByName)]
struct PgPlanLine {
    #[diesel(sql_type = diesel::sql_types::Text)]
    #[diesel(column_name = "QUERY PLAN")]
    line: String,
}

/// A tenant's records and versions must be looked up by key through the primary key, whatever
/// the planner knows of the tenant: a table never analysed (a new server, or autovacuum not yet
/// run), and a tenant that grew after the last `ANALYZE` (when it was absent; PostgreSQL
/// estimated such a tenant at one row). Each look-up of 100 keys is read as the store runs it:
/// with `mobile_id = ANY(…)` PostgreSQL once probed `(tenant_id, domain)` and filtered the ids,
/// reading the tenant's whole range on every push. A pull page must walk the tenant's records
/// in `seq` order and stop at its limit.
#[test]
fn postgres_plans_do_not_depend_on_a_tenants_size_at_the_last_analyze() {
    use diesel::sql_types::{Array, BigInt, Text};
    use sync_domain::store::by_key_sql;
    if !sync_domain::testing::backend_selected(Backend::Postgres) {
        return;
    }
    let Some(test) = sync_domain::testing::TestDb::postgres() else { return };
    let rows = |tenant: &str, n: u32| {
        format!(
            "INSERT INTO records (tenant_id, domain, mobile_id, version, data, deleted, modified_at, \
             server_modified_at, modified_by_device, bu, priority, seq) \
             SELECT '{tenant}', 'task', 'k' || i, 1, '{{}}', false, 0, 0, 'd', NULL, 'medium', i \
             FROM generate_series(1, {n}) AS i; \
             INSERT INTO record_versions (tenant_id, domain, mobile_id, version, data, deleted, \
             modified_at, server_modified_at, modified_by_device, seq, created_at, bu) \
             SELECT tenant_id, domain, mobile_id, version, data, deleted, modified_at, \
             server_modified_at, modified_by_device, seq, 0, bu FROM records WHERE tenant_id = '{tenant}'"
        )
    };
    // 100 keys of a tenant, as a push of 100 changes or a pull page of 100 records looks them up.
    let by_key_plans = |c: &mut diesel::PgConnection,
                        tenant: &str|
     -> diesel::QueryResult<Vec<(String, String)>> {
        let ids: Vec<String> = (1..=100).map(|i| format!("k{}", i * 7)).collect();
        let domains = vec!["task"; ids.len()];
        let versions = vec![1_i64; ids.len()];
        let explain = |sql: &str| diesel::sql_query(format!("EXPLAIN {sql}"));
        let text = |lines: Vec<PgPlanLine>| lines.into_iter().map(|l| l.line).collect::<Vec<_>>().join("\n");
        let keyed =
            |sql: &'static str, c: &mut diesel::PgConnection| -> diesel::QueryResult<(String, String)> {
                let lines = explain(sql)
                    .bind::<Text, _>(tenant)
                    .bind::<Array<Text>, _>(&domains)
                    .bind::<Array<Text>, _>(&ids)
                    .load::<PgPlanLine>(c)?;
                Ok((sql.to_owned(), text(lines)))
            };
        let mut plans = vec![keyed(by_key_sql::RECORDS, c)?, keyed(by_key_sql::RECORDS_FOR_UPDATE, c)?];
        let lines = explain(by_key_sql::VERSIONS)
            .bind::<Text, _>(tenant)
            .bind::<Array<Text>, _>(&domains)
            .bind::<Array<Text>, _>(&ids)
            .bind::<Array<BigInt>, _>(&versions)
            .load::<PgPlanLine>(c)?;
        plans.push((by_key_sql::VERSIONS.to_owned(), text(lines)));
        let lines = explain(by_key_sql::VERSIONS_AS_OF)
            .bind::<Text, _>(tenant)
            .bind::<Array<Text>, _>(&domains)
            .bind::<Array<Text>, _>(&ids)
            .bind::<BigInt, _>(15_000_i64)
            .load::<PgPlanLine>(c)?;
        plans.push((by_key_sql::VERSIONS_AS_OF.to_owned(), text(lines)));
        Ok(plans)
    };
    let (big, analyze, grown) =
        (rows("big", 20_000), "ANALYZE records; ANALYZE record_versions".to_owned(), rows("new", 20_000));
    let plans = test
        .database()
        .run_sync(move |conn| {
            use diesel::connection::SimpleConnection;
            let DbConnection::Pg(c) = conn else { unreachable!("a PostgreSQL test database") };
            c.batch_execute(&big)?;
            let mut plans = by_key_plans(c, "big")?;
            c.batch_execute(&analyze)?;
            c.batch_execute(&grown)?;
            plans.extend(by_key_plans(c, "new")?);
            Ok(plans)
        })
        .unwrap();
    // A pull page, as the store reads it (in its transaction).
    let page = test
        .database()
        .read_tx_sync(|conn| {
            sync_domain::store::explain_pull_page(conn, "new", 10, 1001, &Default::default())
                .map(|l| l.join("\n"))
        })
        .unwrap();
    assert_eq!(plans.len(), 8);
    for (sql, plan) in &plans {
        let probes_the_key = plan.contains("_pkey")
            && plan.lines().any(|l| l.contains("Index Cond") && l.contains("mobile_id"));
        assert!(probes_the_key, "look-up by key {sql}:\n{plan}");
        assert!(
            !plan.lines().any(|l| l.contains("Filter") && l.contains("mobile_id")),
            "look-up by key {sql}:\n{plan}"
        );
        assert!(!plan.contains("Hash Join") && !plan.contains("Seq Scan on record"), "{sql}:\n{plan}");
    }
    // The page walks `(tenant_id, seq)` in order and stops at the limit; it does not read the
    // rest of the tenant to sort it.
    assert!(page.contains("Index Scan using records_tenant_seq"), "pull page:\n{page}");
    assert!(!page.contains("Sort"), "pull page:\n{page}");

    // The rule holds for every tenant-owned table, including those of later migrations.
    let targets = test
        .database()
        .run_sync(|conn| {
            let DbConnection::Pg(c) = conn else { unreachable!("a PostgreSQL test database") };
            Ok(diesel::sql_query(
                "SELECT c.relname AS name, a.attstattarget::bigint AS target FROM pg_attribute AS a \
                 JOIN pg_class AS c ON c.oid = a.attrelid \
                 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r' \
                   AND a.attname = 'tenant_id' ORDER BY 1",
            )
            .load::<StatisticsTarget>(c)?)
        })
        .unwrap();
    assert!(targets.iter().any(|t| t.name == "records"), "{targets:?}");
    let gathering: Vec<&StatisticsTarget> = targets.iter().filter(|t| t.target != 0).collect();
    assert!(gathering.is_empty(), "tables with statistics on tenant_id: {gathering:?}");
}
