//! `ripcord serve`: a read-only view of a project's targets over HTTP (DESIGN §5.9): a
//! JSON API under `/api/`, Prometheus metrics at `/metrics` and a dashboard at `/`.
//!
//! Everything is read from the targets' ledgers at request time, over a connection
//! opened for the request and closed after, so the numbers survive restarts of the
//! server, a target that goes away shows as unreachable without stopping the others,
//! and nothing is cached that could disagree with the ledger. The one write is the
//! capture drain (`capture_sync`): logical capture slots emptied into the capture log.

mod api;
mod capture_sync;
mod metrics;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use ripcord::Target;
use ripcord_core::{Plan, SessionLimits};

/// One database the server shows.
#[derive(Debug, Clone)]
pub struct ServedTarget {
    /// Its name (a `[targets.*]` name, or the redacted URL).
    pub name: String,
    /// Its URL, password included: never shown.
    pub url: String,
}

/// What to serve, and where.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The address to listen on.
    pub listen: SocketAddr,
    /// The targets shown.
    pub targets: Vec<ServedTarget>,
    /// The project's changes (for pending and modified changes).
    pub plan: Plan,
    /// The project (`[project] name`).
    pub project: Option<String>,
    /// Where relative SQLite paths are.
    pub base_dir: PathBuf,
    /// A bearer token every request must carry (`RIPCORD_SERVE_TOKEN`).
    pub token: Option<String>,
    /// The project's snapshot store: its URI and the directory a `file://` URI is
    /// relative to.
    pub snapshot_store: Option<(String, PathBuf)>,
    /// The public keys `[audit]` trusts: the chain verdict checks event signatures
    /// against them, as `ripcord audit verify` does.
    pub trusted_keys: Vec<String>,
    /// Drain the logical capture slots of the PostgreSQL targets this often (`None`:
    /// never; the commands that read the capture log still sync first).
    pub capture_sync_every: Option<Duration>,
    /// `[capture] max_retained_wal` in bytes: above it the drain loop warns.
    pub max_retained_wal_bytes: i64,
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The runtime or the server failed.
    #[error("the server stopped: {0}")]
    Io(#[from] std::io::Error),
}

/// Shared by every request.
pub(crate) struct Served {
    pub options: ServeOptions,
    /// What the capture drain loop last saw, per target.
    pub sync_states: capture_sync::SyncStates,
}

impl Served {
    /// A fresh connection to the target named `name`.
    pub(crate) fn open(&self, name: &str) -> Result<Target, api::ApiError> {
        let served = self
            .options
            .targets
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| api::ApiError::NotFound(format!("no target `{name}` is served")))?;
        let mut target =
            ripcord::target::connect(&served.name, &served.url, &self.options.base_dir)
                .map_err(|e| api::ApiError::Unreachable(e.to_string()))?;
        target.project = self.options.project.clone();
        target.limits = SessionLimits::default();
        Ok(target)
    }
}

/// The routes, for the server and for tests.
pub fn router(options: ServeOptions) -> Router {
    routes(shared(options))
}

fn shared(options: ServeOptions) -> Arc<Served> {
    Arc::new(Served {
        options,
        sync_states: Default::default(),
    })
}

/// Start the capture drain loop on the current runtime, when asked for.
fn start_capture_sync(served: &Arc<Served>) {
    if let Some(every) = served.options.capture_sync_every {
        tokio::spawn(capture_sync::drain_forever(served.clone(), every));
    }
}

fn routes(served: Arc<Served>) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/metrics", get(metrics::metrics))
        .nest("/api", api::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(served.clone(), authorize))
        .with_state(served)
}

/// Bind `options.listen` and serve until interrupted (Ctrl-C); `ready` is told the
/// bound address (port 0 picks a free one).
pub fn serve(options: ServeOptions, ready: impl FnOnce(SocketAddr)) -> Result<(), ServeError> {
    let runtime = runtime()?;
    runtime.block_on(async move {
        let listener = bind(options.listen).await?;
        ready(listener.local_addr()?);
        let served = shared(options);
        start_capture_sync(&served);
        axum::serve(listener, routes(served))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    })
}

/// A server running on its own thread until this is dropped (for the demo and for
/// programs that embed ripcord); it leaves Ctrl-C to the program.
pub struct Background {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Start a server on its own thread; it stops when the result is dropped.
pub fn serve_in_background(options: ServeOptions) -> Result<Background, ServeError> {
    let runtime = runtime()?;
    let listener = runtime.block_on(bind(options.listen))?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        runtime.block_on(async move {
            let served = shared(options);
            start_capture_sync(&served);
            let _ = axum::serve(listener, routes(served))
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
    });
    Ok(Background {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

fn runtime() -> Result<tokio::runtime::Runtime, ServeError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

async fn authorize(State(served): State<Arc<Served>>, request: Request, next: Next) -> Response {
    let Some(token) = &served.options.token else {
        return next.run(request).await;
    };
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    // The dashboard page is opened in a browser, which cannot set the header: it may
    // carry the token as `?token=` and sends it as a header on its own requests.
    let query = request.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("token="))
            .map(str::to_string)
    });
    if bearer.as_deref() == Some(token.as_str()) || query.as_deref() == Some(token.as_str()) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(serde_json::json!({
            "error": "this server needs a bearer token",
            "hint": "send `Authorization: Bearer <RIPCORD_SERVE_TOKEN>` (or open /?token=…)",
        })),
    )
        .into_response()
}

async fn dashboard() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}

async fn not_found(request: Request) -> Response {
    api::ApiError::NotFound(format!("nothing at {}", request.uri().path())).into_response()
}
