//! Every tenant-owned table leads its primary key and every index with `tenant_id` (so the
//! schema can be distributed by tenant). Exceptions: `tenants` (keyed by the tenant id itself)
//! and `api_tokens` (a global lookup table, a Citus reference table).

use diesel::prelude::*;
use sync_domain::schema::ALL_TABLES;
use sync_domain::{Database, DbConnection};

const EXCEPTIONS: &[&str] = &["tenants", "api_tokens"];

#[derive(QueryableByName, Debug)]
struct IndexColumn {
    #[diesel(sql_type = diesel::sql_types::Text)]
    tbl: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    idx: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    col: String,
}

/// (table, index or "PRIMARY KEY", first column) for every index and primary key.
fn leading_columns(db: &Database) -> Vec<IndexColumn> {
    db.run_sync(|conn| {
        Ok(match conn {
            DbConnection::Sqlite(c) => {
                let mut rows = diesel::sql_query(
                    "SELECT m.name AS tbl, il.name AS idx, ii.name AS col \
                     FROM sqlite_master m, pragma_index_list(m.name) il, pragma_index_info(il.name) ii \
                     WHERE m.type = 'table' AND ii.seqno = 0",
                )
                .load::<IndexColumn>(c)?;
                rows.extend(
                    diesel::sql_query(
                        "SELECT m.name AS tbl, 'PRIMARY KEY' AS idx, ti.name AS col \
                         FROM sqlite_master m, pragma_table_info(m.name) ti \
                         WHERE m.type = 'table' AND ti.pk = 1",
                    )
                    .load::<IndexColumn>(c)?,
                );
                rows
            }
            DbConnection::Pg(c) => diesel::sql_query(
                "SELECT tablename AS tbl, indexname AS idx, \
                        split_part(split_part(indexdef, '(', 2), ',', 1) AS col \
                 FROM pg_indexes WHERE schemaname = current_schema()",
            )
            .load::<IndexColumn>(c)?
            .into_iter()
            .map(|r| IndexColumn { col: r.col.trim_end_matches(')').trim().to_owned(), ..r })
            .collect(),
        })
    })
    .unwrap()
}

async fn tenant_leads_every_key_and_index(db: Database) {
    let columns = leading_columns(&db);
    for table in ALL_TABLES.iter().filter(|t| !EXCEPTIONS.contains(t)) {
        let of_table: Vec<&IndexColumn> = columns.iter().filter(|c| c.tbl == *table).collect();
        assert!(!of_table.is_empty(), "{table} has no primary key or index");
        for c in of_table {
            assert_eq!(c.col, "tenant_id", "{}.{} leads with {}", c.tbl, c.idx, c.col);
        }
    }
    // Every table has a primary key (checked per backend: a pkey index or PK columns).
    for table in ALL_TABLES {
        assert!(columns.iter().any(|c| c.tbl == *table), "{table} has no key");
    }
    // The exceptions are what the docs say.
    let first = |t: &str, pred: &dyn Fn(&IndexColumn) -> bool| {
        columns.iter().filter(|c| c.tbl == t && pred(c)).map(|c| c.col.clone()).collect::<Vec<_>>()
    };
    assert!(first("tenants", &|_| true).iter().all(|c| c == "id"));
    assert!(first("api_tokens", &|c| c.idx.contains("tenant")).iter().all(|c| c == "tenant_id"));
}

sync_domain::backend_tests!(tenant_leads_every_key_and_index);
