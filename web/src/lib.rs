//! webcare's HTTP side (axum): `/healthz`, `/readyz` and `/metrics` today; the console, the REST API under
//! `/api/v1` and the web chat arrive with the ticketing issue and are added to [`router`].
//!
//! Architecture invariant: axum types stay in this crate. It reaches state only through the domain's `Store`
//! trait, never through sqlx, so the same routes run on SQLite and PostgreSQL.

pub mod api;
pub mod auth;
pub mod console;
pub mod status;
pub mod webchat;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;
use webcare_domain::{Intake, Store};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub intake: Arc<dyn Intake>,
    pub ticketing: webcare_ticketing::Ticketing,
    pub notices: Arc<webcare_app::notices::Notices>,
    pub webchat: webchat::WebchatHub,
    /// Cancelled when webcare stops: long-lived responses (server-sent events) end then, so shutdown is not held.
    pub shutdown: CancellationToken,
}

/// How long `/readyz` waits for the database before it answers 503: a probe must answer even when the database hangs.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The whole HTTP side with the console's default settings (a console on `127.0.0.1` without TLS).
pub fn router(state: AppState) -> Router {
    router_with(state, console::ConsoleConfig::default())
}

/// The whole HTTP side with the console's settings from the configuration.
pub fn router_with(state: AppState, console_config: console::ConsoleConfig) -> Router {
    let max_body = console_config.max_body;
    let webchat_limits = Arc::new(webchat::AddressLimits::new(
        console_config.webchat_sessions_per_minute,
        console_config.webchat_messages_per_minute,
        console_config.trust_forwarded_for,
    ));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status::page))
        .route("/status.json", get(status::json))
        .route("/chat", get(webchat::page))
        .route("/chat/chat.js", get(webchat::script))
        .route("/chat/chat.css", get(webchat::style))
        .route("/chat/api/session", post(webchat::session))
        .route("/chat/api/messages", post(webchat::post))
        .route("/chat/api/transcript", get(webchat::transcript))
        .route("/chat/api/events", get(webchat::events))
        .nest("/api", api::router())
        // The agents' console, `/` included (the queue; `/login` when logged out).
        .merge(console::routes(console_config))
        // Messages are at most 4000 characters; nothing here needs a bigger body than the configured limit.
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::Extension(webchat_limits))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // With the peer's address, which the console's login rate limit counts by.
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// The client's address: the first `X-Forwarded-For` entry where `trust_forwarded_for` says a proxy in front sets
/// it, else the peer's; `unknown` where neither is known (a request handed to the router in a test).
pub(crate) fn client_address(
    headers: &axum::http::HeaderMap,
    extensions: &axum::http::Extensions,
    trust_forwarded_for: bool,
) -> String {
    if trust_forwarded_for
        && let Some(first) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    {
        return first.to_owned();
    }
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |c| c.0.ip().to_string())
}

/// 200 while the process runs.
async fn healthz() -> &'static str {
    "ok\n"
}

/// 200 when the database answers, 503 otherwise.
async fn readyz(State(state): State<AppState>) -> Response {
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n").into_response(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response()
        }
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database did not answer in time\n").into_response(),
    }
}

/// Prometheus text format.
async fn metrics(State(state): State<AppState>) -> Response {
    let mut out = String::new();
    out.push_str("# HELP webcare_up 1 while webcare runs.\n# TYPE webcare_up gauge\nwebcare_up 1\n");
    let ready = tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await.is_ok_and(|r| r.is_ok());
    let _ = writeln!(
        out,
        "# HELP webcare_database_up 1 when the database answers.\n# TYPE webcare_database_up gauge\nwebcare_database_up {}",
        u8::from(ready)
    );
    let _ = writeln!(
        out,
        "# HELP webcare_bridge_deciding 1 while this instance decides (holds the decider's lease); with several \
         instances, one at a time.\n# TYPE webcare_bridge_deciding gauge\nwebcare_bridge_deciding {}",
        u8::from(state.intake.deciding())
    );
    if ready && let Ok(counts) = state.store.outbox_counts().await {
        out.push_str("# HELP webcare_outbox_rows Outbox rows by state.\n# TYPE webcare_outbox_rows gauge\n");
        for state in webcare_domain::OutboxState::ALL {
            let n = counts.iter().find(|(s, _)| s == state).map_or(0, |(_, n)| *n);
            let _ = writeln!(out, "webcare_outbox_rows{{state=\"{state}\"}} {n}");
        }
    }
    // The work waiting in the database, the same from every instance: what an operator alerts on.
    if ready && let Ok(w) = state.store.work_counts(chrono::Utc::now()).await {
        let gauge = |out: &mut String, name: &str, help: &str, value: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        };
        gauge(
            &mut out,
            "webcare_messages_undecided",
            "Messages stored and not decided yet; stays near 0 while an instance decides.",
            w.undecided,
        );
        out.push_str("# HELP webcare_tickets Tickets by state.\n# TYPE webcare_tickets gauge\n");
        for (state, n) in &w.tickets {
            let _ = writeln!(out, "webcare_tickets{{state=\"{state}\"}} {n}");
        }
        gauge(&mut out, "webcare_tickets_overdue", "New and open tickets past their due time.", w.overdue);
        gauge(&mut out, "webcare_notices_active", "Notices customers are answered from now.", w.active_notices);
        gauge(&mut out, "webcare_clusters_open", "Outage clusters waiting for a notice.", w.open_clusters);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}
