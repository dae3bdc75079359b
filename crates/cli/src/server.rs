//! `latchkey serve`: the local server. A thin adapter: hyper parses HTTP, the core
//! answers.
//!
//! The core's futures are not `Send` (so they also run on Workers), which suits a
//! per-core design: one thread per core, each with a single-threaded tokio runtime and
//! its own `App`. One acceptor thread takes every connection and hands it to the worker
//! with the fewest open connections. Workers used to accept on the shared socket
//! themselves, and then whichever was awake took a whole burst of connections (a
//! load generator's 50 keep-alive connections all landed on one worker, and the other
//! core idled). SQLite reads run on the worker thread (indexed lookups of
//! microseconds); writes wait for the store's group-commit thread without blocking it.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::datadir::Loaded;
use crate::metrics::Metrics;
use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use latchkey_endpoints::response::{endpoint_label, outcome};
use latchkey_endpoints::{App, ClientAddr, MAX_BODY_BYTES, REQUEST_ID_HEADER};
use latchkey_store_sqlite::SqliteStore;
use tokio::sync::{mpsc, watch};

use latchkey_native::{OsEntropy, SystemClock};

/// How long a client may take to send headers, or the body, before the connection is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests may take to finish after SIGTERM.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the body, stopping once it exceeds the limit: the core answers 413 for a body
/// longer than `MAX_BODY_BYTES`, so more than one byte past it is never needed.
async fn read_body(body: Incoming) -> Result<Bytes, hyper::Error> {
    let mut body = body;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() > MAX_BODY_BYTES {
                break;
            }
        }
    }
    Ok(buf.freeze())
}

/// What a worker thread serves with: the core, and the metrics if they are on.
struct Served {
    app: App<SqliteStore>,
    metrics: Option<Arc<Metrics>>,
}

async fn serve_one(
    served: Rc<Served>,
    peer: SocketAddr,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, std::io::Error> {
    let app = &served.app;
    // The access line's and metrics' fields are gathered only when they are used: on
    // the resolver's hot path the clock reads and copies are a measurable share.
    let logged = tracing::enabled!(target: "latchkey::access", tracing::Level::INFO);
    let access = (logged || served.metrics.is_some()).then(|| {
        #[expect(clippy::disallowed_methods, reason = "request latency is measured in the runtime adapter")]
        let started = std::time::Instant::now();
        (started, req.method().clone(), req.uri().path().to_owned())
    });
    let (parts, body) = req.into_parts();
    // Most requests (every resolve) have no body: no timer is armed for those.
    let body = if body.is_end_stream() {
        Bytes::new()
    } else {
        match tokio::time::timeout(READ_TIMEOUT, read_body(body)).await {
            Ok(Ok(b)) => b,
            // A body that stalls or breaks ends the connection; there is no one to answer.
            Ok(Err(e)) => return Err(std::io::Error::other(e)),
            Err(_) => return Err(std::io::Error::other("request body timed out")),
        }
    };
    let mut req = http::Request::from_parts(parts, body);
    req.extensions_mut().insert(ClientAddr(peer.ip().to_string()));
    let resp = app.handle(req).await;
    if let Some((started, method, path)) = access {
        let elapsed = started.elapsed();
        let endpoint = endpoint_label(&path);
        if let Some(metrics) = &served.metrics {
            metrics.record(endpoint, resp.status().as_u16(), elapsed, outcome(&resp));
        }
        if logged {
            // The path only: queries carry codes and tokens, which must never reach a log.
            tracing::info!(
                target: "latchkey::access",
                request_id = resp.headers().get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default(),
                method = %method,
                path = %path,
                endpoint,
                status = resp.status().as_u16(),
                outcome = outcome(&resp).unwrap_or_default(),
                micros = elapsed.as_micros() as u64,
                "request"
            );
        }
    }
    let (parts, body) = resp.into_parts();
    Ok(hyper::Response::from_parts(parts, Full::new(body)))
}

/// A connection on its way from the acceptor to a worker.
type Handoff = (std::net::TcpStream, SocketAddr);

/// The acceptor's view of one worker.
struct WorkerInbox {
    inbox: mpsc::UnboundedSender<Handoff>,
    /// Connections the worker has open; the acceptor picks the least loaded.
    open: Arc<AtomicUsize>,
}

/// Decrements a worker's open-connection count when the connection ends, however it ends.
struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accepts until shutdown and hands each connection to the worker with the fewest
/// open connections (ties go round-robin, so a burst spreads evenly).
async fn accept_loop(
    listener: StdListener,
    workers: Vec<WorkerInbox>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let mut next = 0usize;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(stream) = stream.into_std() else { continue };
                let n = workers.len();
                let chosen = (0..n)
                    .map(|k| (next + k) % n)
                    .min_by_key(|&i| workers[i].open.load(Ordering::Relaxed))
                    .unwrap_or(0);
                next = (chosen + 1) % n;
                let worker = &workers[chosen];
                worker.open.fetch_add(1, Ordering::Relaxed);
                if worker.inbox.send((stream, peer)).is_err() {
                    // The worker is gone (it is shutting down); the connection is dropped.
                    worker.open.fetch_sub(1, Ordering::Relaxed);
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    Ok(())
}

async fn worker_loop(
    mut inbox: mpsc::UnboundedReceiver<Handoff>,
    open: Arc<AtomicUsize>,
    served: Served,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let served = Rc::new(served);
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            handed = inbox.recv() => {
                let Some((stream, peer)) = handed else { break };
                let counted = OpenConnection(open.clone());
                let stream = match tokio::net::TcpStream::from_std(stream) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot register a connection");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let served = served.clone();
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(READ_TIMEOUT)
                    .max_buf_size(64 * 1024)
                    .serve_connection(TokioIo::new(stream), service_fn(move |req| serve_one(served.clone(), peer, req)));
                let conn = graceful.watch(conn);
                tokio::task::spawn_local(async move {
                    let _counted = counted;
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await.is_err() {
        tracing::warn!("some connections did not finish in time");
    }
    Ok(())
}

/// SIGTERM and SIGINT handlers, installed before the server announces itself, so a
/// signal sent the moment it is ready is a graceful stop and not the default kill.
pub struct Signals {
    rt: tokio::runtime::Runtime,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> Result<Self, String> {
        use tokio::signal::unix::{SignalKind, signal};
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        let _entered = rt.enter();
        let term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        drop(_entered);
        Ok(Signals { rt, term, int })
    }

    fn wait(mut self) {
        self.rt.block_on(async {
            tokio::select! {
                _ = self.term.recv() => tracing::info!("SIGTERM received; shutting down"),
                _ = self.int.recv() => tracing::info!("SIGINT received; shutting down"),
            }
        });
    }
}

/// Serves until SIGTERM or SIGINT, then drains in-flight requests and returns.
pub fn run(
    listener: StdListener,
    loaded: Loaded,
    store: SqliteStore,
    signals: Signals,
    metrics: Option<Arc<Metrics>>,
) -> Result<(), String> {
    let Loaded { config, keys, admin_key_hashes, private_jwks, admin_jwt_keys } = loaded;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 16);
    let (tx, rx) = watch::channel(false);
    let mut handles = Vec::with_capacity(workers + 1);
    let mut inboxes = Vec::with_capacity(workers);
    for i in 0..workers {
        let (inbox, handed) = mpsc::unbounded_channel();
        let open = Arc::new(AtomicUsize::new(0));
        inboxes.push(WorkerInbox { inbox, open: open.clone() });
        let (config, keys, store, rx) = (config.clone(), keys.clone(), store.clone(), rx.clone());
        let (admin_key_hashes, private_jwks, metrics) =
            (admin_key_hashes.clone(), private_jwks.clone(), metrics.clone());
        let admin_jwt_keys = admin_jwt_keys.clone();
        let handle = std::thread::Builder::new()
            .name(format!("latchkey-worker-{i}"))
            .spawn(move || -> Result<(), String> {
                let rt =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
                let local = tokio::task::LocalSet::new();
                let app = App::new(config, keys, store, Box::new(SystemClock), Box::new(OsEntropy))
                    .with_admin_key_hashes(admin_key_hashes)
                    .with_seed_private_jwks(private_jwks)
                    .with_admin_jwt_keys(admin_jwt_keys);
                local.block_on(&rt, worker_loop(handed, open, Served { app, metrics }, rx)).map_err(|e| e.to_string())
            })
            .map_err(|e| e.to_string())?;
        handles.push(handle);
    }
    let accept_shutdown = rx.clone();
    let acceptor = std::thread::Builder::new()
        .name("latchkey-acceptor".into())
        .spawn(move || -> Result<(), String> {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            rt.block_on(accept_loop(listener, inboxes, accept_shutdown)).map_err(|e| e.to_string())
        })
        .map_err(|e| e.to_string())?;
    handles.push(acceptor);
    drop(rx);
    signals.wait();
    let _ = tx.send(true);
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("a worker thread panicked".into()),
        }
    }
    tracing::info!("stopped");
    Ok(())
}
