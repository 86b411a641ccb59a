//! The admin HTTP endpoint (`[server] admin_listen`): a front end beside
//! the PostgreSQL one, over the same engine, for operators and monitoring.
//!
//! * `GET /health` — 200 `ok` while the process serves HTTP at all.
//! * `GET /ready` — 503 until the engine's catalog is loaded, then 200.
//! * `GET /sources` — the sources as JSON ([`sources`]).
//! * `GET /metrics` — Prometheus' text format
//!   ([`crate::engine::metrics`]).
//!
//! It binds before the engine starts (so `/ready` can say "not yet"); the
//! serve path hands it the engine through [`Readiness`]. With
//! `admin_token`, every request must carry `Authorization: Bearer <token>`
//! (401 otherwise); without one, only a loopback address is accepted.
//! Built on axum (HTTP/1 only); the engine never imports this module.

pub mod sources;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use crate::engine::Engine;
use crate::engine::credentials::AdminToken;
use crate::engine::error::{KoiosError, Result};

/// The engine, once its catalog is loaded: what `/ready`, `/sources` and
/// `/metrics` wait for. Shared by the admin server and the serve path.
#[derive(Clone, Default)]
pub struct Readiness(Arc<OnceLock<Arc<Engine>>>);

impl Readiness {
    /// The catalog is loaded: the endpoint answers from `engine` from now on.
    pub fn ready(&self, engine: Arc<Engine>) {
        // A second call (there is none) would keep the first engine.
        let _ = self.0.set(engine);
    }

    fn engine(&self) -> Option<&Arc<Engine>> {
        self.0.get()
    }
}

#[derive(Clone)]
struct AdminState {
    readiness: Readiness,
    token: Option<Arc<AdminToken>>,
}

/// A bound, not yet serving, admin endpoint.
pub struct AdminServer {
    listener: TcpListener,
    router: Router,
    readiness: Readiness,
}

impl AdminServer {
    /// Binds `listen`. Without a token only a loopback address is allowed
    /// (the configuration already refuses others; this keeps a config built
    /// in code to the same rule).
    pub async fn bind(listen: SocketAddr, token: Option<AdminToken>) -> Result<AdminServer> {
        if token.is_none() && !listen.ip().to_canonical().is_loopback() {
            return Err(KoiosError::Config(format!(
                "the admin endpoint will not listen on {listen} without server.admin_token \
                 (set admin_token = \"${{KOIOS_ADMIN_TOKEN}}\" or listen on 127.0.0.1)"
            )));
        }
        let listener = TcpListener::bind(listen).await.map_err(|e| {
            KoiosError::io(
                format!("cannot listen on {listen} for the admin endpoint (server.admin_listen)"),
                e,
            )
        })?;
        let readiness = Readiness::default();
        let state = AdminState {
            readiness: readiness.clone(),
            token: token.map(Arc::new),
        };
        Ok(AdminServer {
            listener,
            router: router(state),
            readiness,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| KoiosError::io("cannot read the admin listen address", e))
    }

    /// What the serve path flips once the engine is started.
    pub fn readiness(&self) -> Readiness {
        self.readiness.clone()
    }

    /// Serves until the task is dropped.
    pub async fn run(self) -> Result<()> {
        axum::serve(self.listener, self.router)
            .await
            .map_err(|e| KoiosError::io("the admin endpoint stopped", e))
    }
}

fn router(state: AdminState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/sources", get(sources_json))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

/// Refuses a request without the configured bearer token (when one is set).
async fn authorize(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    if let Some(token) = &state.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        if !given.is_some_and(|given| token.matches(given.trim())) {
            let mut response =
                (StatusCode::UNAUTHORIZED, "a bearer token is required\n").into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"koios\""),
            );
            return response;
        }
    }
    next.run(request).await
}

async fn health() -> &'static str {
    "ok\n"
}

fn not_ready() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "the catalog is loading\n").into_response()
}

async fn ready(State(state): State<AdminState>) -> Response {
    match state.readiness.engine() {
        Some(_) => (StatusCode::OK, "ready\n").into_response(),
        None => not_ready(),
    }
}

async fn sources_json(State(state): State<AdminState>) -> Response {
    match state.readiness.engine() {
        Some(engine) => axum::Json(sources::sources_json(engine)).into_response(),
        None => not_ready(),
    }
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let Some(engine) = state.readiness.engine() else {
        return not_ready();
    };
    let mut response = Response::new(Body::from(engine.render_metrics()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
