//! The PostgreSQL LISTEN connection: one per node, on its own tokio-postgres connection
//! (outside the pool), that turns other nodes' NOTIFY wake-ups into local wakes.
//!
//! While it is down nothing is heard from other nodes, so losing it wakes every local
//! subscriber (they re-read by cursor) and distrusts every cache; it then reconnects with
//! backoff, and on reconnecting wakes everyone again (commits made while it was down).

use std::time::Duration;

use futures_util::StreamExt;
use sync_domain::live::{CHANNEL_PREFIX, parse_wake_payload};
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, NoTls};

use crate::error::{LiveError, Result};
use crate::hub::Hub;

/// First wait before reconnecting; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Runs the LISTEN connection until `stop` turns true, reconnecting with backoff.
pub(crate) async fn listen(
    hub: Hub,
    url: String,
    search_path: Option<String>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let session = session(&hub, &url, search_path.as_deref(), &mut backoff);
        let result = tokio::select! {
            result = session => result,
            () = crate::hub::until_set(&mut stop) => {
                hub.listener_down();
                return;
            }
        };
        let was_up = hub.listening();
        hub.listener_down();
        match result {
            Ok(()) => tracing::warn!("the LISTEN connection closed; reconnecting"),
            Err(e) if was_up => tracing::warn!(error = %e, "the LISTEN connection was lost; reconnecting"),
            Err(e) => tracing::debug!(error = %e, "cannot open the LISTEN connection yet"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = crate::hub::until_set(&mut stop) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life: connect, LISTEN, forward notifications until it ends.
async fn session(hub: &Hub, url: &str, search_path: Option<&str>, backoff: &mut Duration) -> Result<()> {
    let (client, mut connection) = tokio_postgres::connect(url, NoTls).await?;
    let (tx, mut notifications) = mpsc::unbounded_channel::<String>();
    // The connection object performs the IO; polling its messages drives it.
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => {
                    if tx.send(n.payload().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => return Err(LiveError::from(e)),
            }
        }
        Ok(())
    });
    if let Some(schema) = search_path {
        client.batch_execute(&format!("SET search_path TO {}", quote_ident(schema))).await?;
    }
    let schema: String = client.query_one("SELECT current_schema()::text", &[]).await?.get(0);
    let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
    let channel = format!("{CHANNEL_PREFIX}{schema}");
    client.batch_execute(&format!("LISTEN {}", quote_ident(&channel))).await?;
    tracing::info!(pid, %channel, "listening for other nodes' commits");
    hub.set_distributed();
    hub.listener_up(pid);
    *backoff = MIN_BACKOFF;
    while let Some(payload) = notifications.recv().await {
        hub.note_notification();
        match parse_wake_payload(&payload) {
            Some(wake) => hub.wake(&wake),
            None => tracing::debug!(%payload, "ignoring a notification that is not a wake-up"),
        }
    }
    drop(client);
    match driver.await {
        Ok(result) => result,
        Err(e) => Err(LiveError::ListenTask(e.to_string())),
    }
}

/// Quotes a PostgreSQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
