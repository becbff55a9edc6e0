//! Storage for syncforge on SQLite and PostgreSQL: schema, migrations, pool, data access.
#![doc = include_str!("../README.md")]

pub mod config;
pub mod db;
pub mod domains;
pub mod engine;
pub mod error;
pub mod live;
pub mod micros;
pub mod protocol;
pub mod schema;
pub mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use config::SyncConfig;
pub use db::{
    Backend, ConnectOptions, Database, DbConnection, GroupStats, PoolStatus, Readiness, write_transaction,
};
pub use engine::SyncEngine;
pub use error::{Error, Result};
