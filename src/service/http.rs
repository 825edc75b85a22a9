//! The HTTP surface: the live funnel page at `/`, `/metrics`, `/api/v1/summary`, `/api/v1/accounts/{account_id}`,
//! `/healthz` and `/readyz`.
//!
//! Handlers take the engine lock for as long as one read takes; the consumer thread holds it
//! per batch (a few milliseconds), so a scrape waits at most that long.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use prometheus::Registry;

use super::metrics;
use super::state::Shared;
use crate::engine::AccountView;
use crate::summary::Summary;

/// What the HTTP surface reads: one engine (`spiral run`), or the engines of the partitions
/// an instance owns (scale-out, `service::stages`).
pub trait Numbers: Send + Sync + 'static {
    fn summary(&self) -> Summary;
    fn account(&self, account_id: &str) -> Option<AccountView>;
    fn metrics(&self, process: &Registry) -> String;
    /// The consumer thread has ended.
    fn stopped(&self) -> bool;
    fn ready(&self) -> bool;
    /// A graceful stop: finish the batch in hand, commit, leave.
    fn ask_stop(&self);
}

impl Numbers for Shared {
    fn summary(&self) -> Summary {
        self.engine_now().summary()
    }

    fn account(&self, account_id: &str) -> Option<AccountView> {
        self.engine_now().account(account_id)
    }

    fn metrics(&self, process: &Registry) -> String {
        metrics::render(self, process)
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed) && !self.stopping()
    }

    fn ask_stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }
}

#[derive(Clone)]
struct App {
    shared: Arc<dyn Numbers>,
    process: Arc<Registry>,
}

pub fn router(shared: Arc<dyn Numbers>) -> Router {
    let app = App {
        shared,
        process: Arc::new(metrics::process_registry()),
    };
    Router::new()
        .route("/", get(page))
        .route("/metrics", get(scrape))
        .route("/api/v1/summary", get(summary))
        .route("/api/v1/accounts/{account_id}", get(account))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(app)
}

/// CPU-bound reads run off the reactor's worker threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("a metrics or summary read panicked")
}

/// The live funnel page: plain HTML, CSS and a little JavaScript that polls the summary.
const PAGE: &str = include_str!("page.html");

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}

async fn scrape(State(app): State<App>) -> Response {
    let text = blocking(move || app.shared.metrics(&app.process)).await;
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn summary(State(app): State<App>) -> Response {
    let summary = blocking(move || app.shared.summary()).await;
    Json(summary).into_response()
}

async fn account(State(app): State<App>, Path(account_id): Path<String>) -> Response {
    let id = account_id.clone();
    let view = blocking(move || app.shared.account(&id)).await;
    match view {
        Some(view) => Json(view).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": format!("no account {account_id:?}")})),
        )
            .into_response(),
    }
}

/// Alive as long as the consumer thread runs.
async fn healthz(State(app): State<App>) -> Response {
    if app.shared.stopped() {
        (StatusCode::SERVICE_UNAVAILABLE, "consumer stopped\n").into_response()
    } else {
        "ok\n".into_response()
    }
}

/// Ready once partitions are assigned and a poll has completed since.
async fn readyz(State(app): State<App>) -> Response {
    if app.shared.ready() {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}
