//! The HTTP server: an accept loop over hyper-util's connection builder (HTTP/1.1 with
//! WebSocket upgrades; HTTP/2 is not built in, as with axum::serve before), with bounds on what
//! one slow, silent or oversized client can hold (`[http]` of the configuration,
//! [`HttpConfig`]):
//!
//! - **headers**: a request's head must arrive within `header_read_timeout_secs`, counted from
//!   the accept for a connection's first request and from its first byte for a later one;
//!   past it the connection is closed without an answer (a slowloris client trickling its
//!   headers, or one that connects and says nothing);
//! - **body**: every request carries a [`BodyDeadline`] `body_read_timeout_secs` after its
//!   headers; a body still arriving then is answered 408 `request_timeout` (sync-api's
//!   `read_body`), and the connection is closed since the body was not read to its end;
//! - **idle**: a connection with no request in progress and no byte either way for
//!   `idle_timeout_secs` is closed;
//! - **size**: a head over `max_header_bytes` is refused with 431 and the connection closed.
//!
//! A request in progress is cut by none of these however long it lasts, so live streams
//! (SSE, `pull?wait=`) stay open; an upgraded WebSocket leaves hyper, and this watch, at the
//! upgrade (sync-live bounds its silence).
//!
//! Why a watch of our own besides hyper's `header_read_timeout`: hyper starts that clock when
//! an HTTP/1.1 connection waits for a head, which includes a keep-alive connection waiting idle
//! for its next request (so it would also be the idle timeout), and it does not run while
//! hyper-util sniffs the protocol from the first bytes (a client that connects and sends
//! nothing would be held forever). So a watchdog per connection applies the rules above: it
//! sees the connection's bytes through its IO and its requests through its service. hyper's
//! timer stays on as a backstop, at idle + header (the longest the rules allow between two
//! requests).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use sync_api::http::BodyDeadline;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tower::Service;

use crate::config::HttpConfig;

/// How long a connection asked to close (idle, or the server stopping) may take before it is
/// dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The bounds of one connection, from [`HttpConfig`] (`None`: off).
#[derive(Debug, Clone, Copy)]
struct Bounds {
    header: Option<Duration>,
    body: Option<Duration>,
    idle: Option<Duration>,
    /// How often the watchdog looks: a tenth of the shortest timeout, 10 ms to 1 s.
    tick: Duration,
}

impl Bounds {
    fn new(config: &HttpConfig) -> Self {
        let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        let header = secs(config.header_read_timeout_secs);
        let idle = secs(config.idle_timeout_secs);
        let shortest = [header, idle].into_iter().flatten().min().unwrap_or(Duration::from_secs(10));
        Bounds {
            header,
            body: secs(config.body_read_timeout_secs),
            idle,
            tick: (shortest / 10).clamp(Duration::from_millis(10), Duration::from_secs(1)),
        }
    }

    /// Whether the watchdog has anything to do.
    fn watched(&self) -> bool {
        self.header.is_some() || self.idle.is_some()
    }

    /// hyper's own HTTP/1.1 header timer (see the module's documentation).
    fn hyper_header_timeout(&self) -> Option<Duration> {
        Some(self.header? + self.idle?)
    }
}

/// Serves `router` on `listener` until `signal` resolves, then stops accepting, asks every
/// connection to finish (idle ones close at once) and waits until they have.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    config: &HttpConfig,
    signal: impl Future<Output = ()>,
) {
    let bounds = Bounds::new(config);
    let builder = Arc::new(builder(&bounds, config.max_header_bytes));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Every connection task holds a receiver; the sender sees them all gone.
    let (open_tx, open_rx) = watch::channel(());
    let mut signal = pin!(signal);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            },
            () = &mut signal => break,
        };
        // No Nagle delay: a live stream writes small events, and each must leave at once rather
        // than wait up to 40 ms for the acknowledgement of the one before.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        tokio::spawn(connection(
            stream,
            router.clone(),
            bounds,
            builder.clone(),
            stop_rx.clone(),
            open_rx.clone(),
        ));
    }
    drop(listener);
    stop_tx.send_replace(true);
    drop(open_rx);
    tracing::debug!(connections = open_tx.receiver_count(), "waiting for connections to finish");
    open_tx.closed().await;
}

fn builder(bounds: &Bounds, max_header_bytes: usize) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(bounds.hyper_header_timeout())
        .max_buf_size(max_header_bytes);
    builder
}

/// An accept error: the connection's own (the peer gave up) is skipped; anything else (too
/// many open files…) is logged and waited out for a second, as axum::serve does.
async fn accept_failed(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Serves one connection under its watchdog. `_open` is held until the connection is done.
async fn connection(
    stream: TcpStream,
    router: Router,
    bounds: Bounds,
    builder: Arc<auto::Builder<TokioExecutor>>,
    mut stop: watch::Receiver<bool>,
    _open: watch::Receiver<()>,
) {
    let activity = Arc::new(Activity::new(Instant::now()));
    let io = TokioIo::new(Watched { inner: stream, activity: activity.clone() });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let in_flight = InFlight::start(&activity);
            let mut request = request.map(Body::new);
            if let Some(deadline) = bounds.body.and_then(|body| Instant::now().checked_add(body)) {
                request.extensions_mut().insert(BodyDeadline(deadline));
            }
            let mut router = router.clone();
            let response = router.call(request);
            async move {
                let response = response.await?;
                Ok::<_, Infallible>(response.map(|body| Guarded { body, _in_flight: in_flight }))
            }
        })
    };
    let mut conn = pin!(builder.serve_connection_with_upgrades(io, service));
    let mut tick = tokio::time::interval(bounds.tick);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut watchdog = Watchdog::default();
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !stopping => {
                if changed.is_err() || *stop.borrow() {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                    watchdog.closing_since.get_or_insert_with(Instant::now);
                }
            }
            _ = tick.tick(), if bounds.watched() || stopping => {
                match watchdog.check(&activity, &bounds, stopping, Instant::now()) {
                    Verdict::Keep => {}
                    Verdict::Close(reason) => {
                        tracing::debug!(reason, "closing a connection");
                        return;
                    }
                    Verdict::WindDown => conn.as_mut().graceful_shutdown(),
                }
            }
        }
    }
}

/// What the watchdog knows of one connection, kept up to date by its IO ([`Watched`]) and its
/// requests ([`InFlight`]).
#[derive(Debug)]
struct Activity {
    accepted: Instant,
    /// Milliseconds after `accepted` of the last byte read or written.
    last_io_ms: AtomicU64,
    /// Bytes read so far.
    read: AtomicU64,
    /// Requests whose response has not been sent to its end.
    in_flight: AtomicUsize,
    /// Requests received so far (heads read to their end).
    requests: AtomicU64,
    /// `read` when the last response ended: bytes beyond it belong to the next request.
    read_when_idle: AtomicU64,
    /// Milliseconds after `accepted` when the last response ended.
    idle_since_ms: AtomicU64,
}

impl Activity {
    fn new(accepted: Instant) -> Self {
        Activity {
            accepted,
            last_io_ms: AtomicU64::new(0),
            read: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            read_when_idle: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
        }
    }

    fn ms_now(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn io(&self, read: usize) {
        if read > 0 {
            self.read.fetch_add(read as u64, Ordering::Relaxed);
        }
        self.last_io_ms.store(self.ms_now(), Ordering::Relaxed);
    }
}

/// A request in progress, from its head until its response's body is dropped (sent to its end,
/// or abandoned).
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        activity.requests.fetch_add(1, Ordering::Relaxed);
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.read_when_idle.store(activity.read.load(Ordering::Relaxed), Ordering::Relaxed);
        activity.idle_since_ms.store(activity.ms_now(), Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What the watchdog decides at a tick.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Keep,
    /// Drop the connection now.
    Close(&'static str),
    /// Ask the connection to finish (it closes at once when idle).
    WindDown,
}

#[derive(Debug, Default)]
struct Watchdog {
    /// When the watchdog first saw bytes of a later request's head.
    head_started: Option<Instant>,
    /// When the connection was asked to finish.
    closing_since: Option<Instant>,
}

impl Watchdog {
    fn check(&mut self, activity: &Activity, bounds: &Bounds, stopping: bool, now: Instant) -> Verdict {
        if let Some(since) = self.closing_since {
            // Asked to finish: an idle connection has CLOSE_GRACE; one with a request in
            // progress (the server stopping) may finish it, as graceful shutdown promises.
            if now.saturating_duration_since(since) >= CLOSE_GRACE
                && activity.in_flight.load(Ordering::Acquire) == 0
            {
                return Verdict::Close("did not finish when asked");
            }
            if !stopping {
                return Verdict::Keep;
            }
        }
        if activity.in_flight.load(Ordering::Acquire) > 0 {
            self.head_started = None;
            return Verdict::Keep;
        }
        let first = activity.requests.load(Ordering::Relaxed) == 0;
        let reading_head =
            activity.read.load(Ordering::Relaxed) > activity.read_when_idle.load(Ordering::Relaxed);
        if first || reading_head {
            let since = if first { activity.accepted } else { *self.head_started.get_or_insert(now) };
            if bounds.header.is_some_and(|limit| now.saturating_duration_since(since) >= limit) {
                return Verdict::Close("header read timeout");
            }
        } else {
            self.head_started = None;
        }
        if !reading_head && let Some(limit) = bounds.idle {
            let quiet_ms = activity
                .idle_since_ms
                .load(Ordering::Relaxed)
                .max(activity.last_io_ms.load(Ordering::Relaxed));
            let quiet_since = activity.accepted + Duration::from_millis(quiet_ms);
            if now.saturating_duration_since(quiet_since) >= limit && self.closing_since.is_none() {
                self.closing_since = Some(now);
                return Verdict::WindDown;
            }
        }
        Verdict::Keep
    }
}

/// A connection's stream, reporting its bytes to the watchdog.
#[derive(Debug)]
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let read = buf.filled().len().saturating_sub(before);
        if read > 0 {
            this.activity.io(read);
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.io(0);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.io(0);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A response body that keeps its request [`InFlight`] until hyper drops it.
struct Guarded {
    body: Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(header: u64, idle: u64) -> Bounds {
        Bounds::new(&HttpConfig {
            header_read_timeout_secs: header,
            idle_timeout_secs: idle,
            ..HttpConfig::default()
        })
    }

    /// The instant `secs` after the accept.
    fn at(activity: &Activity, secs: f64) -> Instant {
        activity.accepted + Duration::from_secs_f64(secs)
    }

    /// `read` bytes arriving `secs` after the accept.
    fn io_at(activity: &Activity, secs: f64, read: u64) {
        activity.read.fetch_add(read, Ordering::Relaxed);
        activity.last_io_ms.store((secs * 1000.0) as u64, Ordering::Relaxed);
    }

    #[test]
    fn the_first_head_is_timed_from_the_accept() {
        let activity = Activity::new(Instant::now());
        let mut watchdog = Watchdog::default();
        let bounds = bounds(10, 60);
        // Silent, then one byte a second: closed at 10 s all the same.
        for second in 1..10 {
            io_at(&activity, f64::from(second), 1);
            let verdict = watchdog.check(&activity, &bounds, false, at(&activity, f64::from(second)));
            assert_eq!(verdict, Verdict::Keep, "{second}");
        }
        assert_eq!(
            watchdog.check(&activity, &bounds, false, at(&activity, 10.0)),
            Verdict::Close("header read timeout")
        );
    }

    #[test]
    fn a_keep_alive_connection_waits_idle_then_has_the_header_timeout() {
        let activity = Arc::new(Activity::new(Instant::now()));
        let mut watchdog = Watchdog::default();
        let bounds = bounds(10, 60);
        io_at(&activity, 0.0, 100);
        drop(InFlight::start(&activity));
        // Idle for 59 s: kept (the header timeout does not run while nothing arrives).
        assert_eq!(watchdog.check(&activity, &bounds, false, at(&activity, 59.0)), Verdict::Keep);
        // A byte of the next head: 10 s from when the watchdog saw it.
        io_at(&activity, 59.0, 1);
        assert_eq!(watchdog.check(&activity, &bounds, false, at(&activity, 59.0)), Verdict::Keep);
        assert_eq!(watchdog.check(&activity, &bounds, false, at(&activity, 68.0)), Verdict::Keep);
        assert_eq!(
            watchdog.check(&activity, &bounds, false, at(&activity, 69.0)),
            Verdict::Close("header read timeout")
        );
    }

    #[test]
    fn an_idle_connection_is_wound_down_then_dropped() {
        let activity = Arc::new(Activity::new(Instant::now()));
        let mut watchdog = Watchdog::default();
        let bounds = bounds(10, 60);
        io_at(&activity, 0.0, 100);
        drop(InFlight::start(&activity));
        assert_eq!(watchdog.check(&activity, &bounds, false, at(&activity, 59.9)), Verdict::Keep);
        assert_eq!(watchdog.check(&activity, &bounds, false, at(&activity, 60.5)), Verdict::WindDown);
        assert_eq!(watchdog.check(&activity, &bounds, false, at(&activity, 61.0)), Verdict::Keep);
        assert_eq!(
            watchdog.check(&activity, &bounds, false, at(&activity, 61.5)),
            Verdict::Close("did not finish when asked")
        );
    }

    #[test]
    fn a_request_in_progress_is_never_cut() {
        let activity = Arc::new(Activity::new(Instant::now()));
        let mut watchdog = Watchdog::default();
        let bounds = bounds(10, 60);
        io_at(&activity, 0.0, 100);
        let stream = InFlight::start(&activity);
        for minute in 1..100 {
            let now = at(&activity, f64::from(minute) * 60.0);
            assert_eq!(watchdog.check(&activity, &bounds, false, now), Verdict::Keep);
        }
        // Stopping: the request may finish; then the connection goes.
        watchdog.closing_since = Some(at(&activity, 6000.0));
        assert_eq!(watchdog.check(&activity, &bounds, true, at(&activity, 6005.0)), Verdict::Keep);
        drop(stream);
        assert_eq!(
            watchdog.check(&activity, &bounds, true, at(&activity, 6005.0)),
            Verdict::Close("did not finish when asked")
        );
    }

    #[test]
    fn zero_turns_a_timeout_off() {
        let activity = Activity::new(Instant::now());
        let mut watchdog = Watchdog::default();
        let bounds = bounds(0, 0);
        assert!(!bounds.watched());
        assert_eq!(bounds.hyper_header_timeout(), None);
        assert_eq!(watchdog.check(&activity, &bounds, false, at(&activity, 3600.0)), Verdict::Keep);
        let defaults = Bounds::new(&HttpConfig::default());
        assert_eq!(defaults.hyper_header_timeout(), Some(Duration::from_secs(70)));
        assert_eq!(defaults.tick, Duration::from_secs(1));
    }
}
