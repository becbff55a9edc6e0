//! Live changes for syncforge: the change hub, coalesced reads by cursor, PostgreSQL
//! LISTEN/NOTIFY between nodes, limits and backpressure.
#![doc = include_str!("../README.md")]

pub mod config;
pub mod error;
pub mod hub;
mod pg;
pub mod reader;
pub mod stream;

use std::sync::Arc;

use sync_domain::{Backend, SyncEngine};
use tokio::sync::watch;

pub use config::LiveConfig;
pub use error::{LiveError, Result};
pub use hub::{ConnectionGuard, Hub, HubStats, StreamGuard, TenantWatch, until_set};
pub use reader::{ReadKey, Reader};
pub use stream::{CloseReason, LiveEvent, Next, StreamRequest, Subscription};

/// The live layer of one node: the hub, attached to the engine as its commit listener, and
/// the coalescing reader. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Live {
    hub: Hub,
    engine: SyncEngine,
    reader: Reader,
    stop: Arc<watch::Sender<bool>>,
}

impl Live {
    /// Attaches a new hub to `engine`. Use [`Live::engine`] from then on: it publishes its
    /// commits to the hub (and, on PostgreSQL, to the other nodes).
    pub fn new(engine: SyncEngine, config: LiveConfig) -> Self {
        let hub = Hub::new(config);
        let engine = engine.with_commit_listener(Arc::new(hub.clone()));
        let reader = Reader::new(engine.clone(), hub.clone());
        Live { hub, engine, reader, stop: Arc::new(watch::channel(false).0) }
    }

    /// The engine that tells this hub of its commits.
    pub fn engine(&self) -> &SyncEngine {
        &self.engine
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// On PostgreSQL, starts the LISTEN connection that hears other nodes' commits (needs a
    /// tokio runtime); nothing on SQLite. Caches are distrusted until it is up.
    pub fn start_listener(&self) {
        let Some((url, search_path)) = self.engine.database().postgres_target() else { return };
        debug_assert_eq!(self.engine.database().backend(), Backend::Postgres);
        self.hub.set_distributed();
        let task = pg::listen(
            self.hub.clone(),
            url.to_owned(),
            search_path.map(str::to_owned),
            self.stop.subscribe(),
        );
        tokio::spawn(task);
    }

    /// Closes every stream with "reconnect" and stops the LISTEN connection.
    pub fn shutdown(&self) {
        self.hub.shutdown();
        self.stop.send_replace(true);
    }

    /// Starts following a cursor for one subscriber. Checks the filters first (a bad cursor
    /// or unknown domain is the engine's 400), then takes a stream slot of the token.
    pub fn subscribe(&self, request: StreamRequest) -> Result<Subscription> {
        self.engine.check_pull_filters(request.cursor.as_deref(), request.domains.as_deref())?;
        if let Some(device) = &request.device_id {
            sync_domain::engine::check_device_id(device)?;
        }
        let guard = self.hub.register_stream(&request.token_key);
        Ok(stream::start(&self.hub, &self.reader, &self.engine, request, guard))
    }
}
