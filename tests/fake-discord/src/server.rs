//! The HTTP side: an axum router behind a hand-written accept loop on 127.0.0.1, serving the REST API under
//! `/api/v10`, the WebSocket gateway at `/gateway`, and attachment files. The loop is ours rather than
//! `axum::serve` so that an injected "connection drop" can close one connection without an answer and shutdown
//! ends gateway connections instead of waiting for them. Around every REST handler it applies, in Discord's
//! order: authentication, the invalid-request ban, injected faults, the global and per-route buckets, and the
//! `X-RateLimit-*` headers.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::clock::unix_ms;
use crate::config::Limit;
use crate::gateway;
use crate::ratelimit::{BucketState, Verdict};
use crate::rest::{self, ApiError, Reply, routes};
use crate::types::{Fault, Scope};
use crate::world::World;

/// What the server, the gateway connections and the test handle share.
pub(crate) struct Shared {
    world: Mutex<World>,
    /// Bumped after every change to the world; gateway connections and `wait_until` watch it.
    pub changed: watch::Sender<u64>,
}

impl Shared {
    pub fn new(world: World) -> Shared {
        Shared { world: Mutex::new(world), changed: watch::Sender::new(0) }
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves the world as consistent as any single call leaves it.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn read<R>(&self, f: impl FnOnce(&World) -> R) -> R {
        f(&self.lock())
    }

    pub fn write<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        let r = f(&mut self.lock());
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        r
    }

    /// A change nobody needs to hear about (a connection's own bookkeeping); not announcing it keeps connections
    /// from waking each other in a loop.
    pub fn quiet<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.lock())
    }
}

#[derive(Clone)]
struct AppState {
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
}

/// Lets a handler close the connection its request came on.
#[derive(Clone)]
struct Hangup(Arc<Notify>);

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let router = Router::new().fallback(route).with_state(AppState { shared, stop: stop.clone() });
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let router = router.clone();
                let mut stopped = stop.clone();
                connections.spawn(async move {
                    let hangup = Hangup(Arc::new(Notify::new()));
                    let notified = hangup.0.clone();
                    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(hangup.clone());
                        let router = router.clone();
                        async move { Ok::<_, Infallible>(router.oneshot(req.map(Body::new)).await.unwrap_or_else(|e| match e {})) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades();
                    // Dropping the connection future closes the socket without an answer.
                    tokio::select! {
                        _ = connection => {}
                        _ = notified.notified() => {}
                        _ = stopped.changed() => {}
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

fn json_response(status: u16, body: Option<&Value>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match body {
        Some(b) => (status, [(header::CONTENT_TYPE, "application/json")], b.to_string()).into_response(),
        None => status.into_response(),
    }
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.status, Some(&e.body()))
}

fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).ceil() / 1000.0
}

fn set(resp: &mut Response, name: &'static str, value: String) {
    if let Ok(v) = HeaderValue::from_str(&value) {
        resp.headers_mut().insert(name, v);
    }
}

fn bucket_headers(resp: &mut Response, s: &BucketState) {
    let reset = (unix_ms() as f64 / 1000.0) + s.reset_after.as_secs_f64();
    set(resp, "x-ratelimit-limit", s.limit.to_string());
    set(resp, "x-ratelimit-remaining", s.remaining.to_string());
    set(resp, "x-ratelimit-reset", format!("{reset:.3}"));
    set(resp, "x-ratelimit-reset-after", format!("{:.3}", secs(s.reset_after)));
    set(resp, "x-ratelimit-bucket", s.bucket.clone());
}

/// A 429 in Discord's shape, with `Retry-After` (whole seconds, rounded up) and `X-RateLimit-Scope`.
fn too_many(retry_after: Duration, scope: Scope, state: Option<&BucketState>) -> Response {
    let global = scope == Scope::Global;
    let message =
        if scope == Scope::Shared { "The resource is being rate limited." } else { "You are being rate limited." };
    let body = json!({"message": message, "retry_after": secs(retry_after), "global": global});
    let mut resp = json_response(429, Some(&body));
    if let Some(s) = state {
        bucket_headers(&mut resp, s);
    }
    set(&mut resp, "retry-after", (retry_after.as_secs_f64().ceil() as u64).max(1).to_string());
    set(&mut resp, "x-ratelimit-scope", scope.as_str().to_string());
    if global {
        set(&mut resp, "x-ratelimit-global", "true".into());
    }
    resp
}

async fn route(State(app): State<AppState>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    if path == "/gateway" || path == "/" {
        let (mut parts, _) = req.into_parts();
        return match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
            Ok(ws) => {
                let shared = app.shared.clone();
                let stop = app.stop.clone();
                ws.on_upgrade(move |socket| gateway::run(socket, shared, query, stop))
            }
            Err(rejection) => rejection.into_response(),
        };
    }
    if path.starts_with("/attachments/") {
        let file = app.shared.read(|w| w.attachments.get(&path).cloned());
        return match file {
            Some((content_type, bytes)) => ([(header::CONTENT_TYPE, content_type)], bytes).into_response(),
            None => error_response(&ApiError::not_found()),
        };
    }
    let Some(api_path) = path.strip_prefix("/api/v10") else {
        return error_response(&ApiError::not_found());
    };
    let (route, params) = match rest::match_route(req.method().as_str(), api_path) {
        Ok(m) => m,
        Err(e) => return error_response(&e),
    };
    let class = rest::classify(route, &params);
    let shared = app.shared.clone();
    let authorized = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| shared.read(|w| v.strip_prefix("Bot ") == Some(w.token.as_str())));
    let now = Instant::now();
    let early = shared.write(|w| {
        *w.stats.requests.entry(route.to_string()).or_default() += 1;
        if class.needs_auth && !authorized {
            return Some(Early::Error(ApiError::unauthorized()));
        }
        if let Some(left) = w.limiter.banned_for(now) {
            return Some(Early::Banned(left));
        }
        let fault = w.faults.get_mut(route).and_then(|q| q.pop_front());
        if fault.is_some() {
            w.stats.faults += 1;
        }
        fault.map(Early::Fault)
    });
    let mut delay = None;
    let early_response = match early {
        None => None,
        Some(Early::Error(e)) => Some(error_response(&e)),
        Some(Early::Banned(left)) => Some(too_many(left, Scope::Global, None)),
        Some(Early::Fault(fault)) => match fault {
            Fault::TooManyRequests { retry_after, scope } => {
                let wait = shared.read(|w| w.config.scaled(retry_after));
                let state = BucketState {
                    limit: 1,
                    remaining: 0,
                    reset_after: wait,
                    bucket: crate::ratelimit::bucket_hash(class.bucket),
                };
                Some(too_many(wait, scope, (scope != Scope::Global).then_some(&state)))
            }
            Fault::ServerError { status } => {
                let message = match status {
                    502 => "502: Bad Gateway".to_string(),
                    503 => "503: Service Unavailable".to_string(),
                    s => format!("{s}: Internal Server Error"),
                };
                Some(json_response(status, Some(&json!({"message": message, "code": 0}))))
            }
            Fault::Error { status, code, message } => Some(error_response(&ApiError::new(status, code, &message))),
            Fault::Delay(d) => {
                delay = Some(d);
                None
            }
            Fault::DropConnection => {
                if let Some(Hangup(n)) = req.extensions().get::<Hangup>() {
                    n.notify_one();
                }
                // The connection task drops this handler together with the connection.
                std::future::pending::<()>().await;
                None
            }
        },
    };
    let response = match early_response {
        Some(r) => r,
        None => {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            let has_body = matches!(req.method().as_str(), "POST" | "PATCH" | "PUT");
            let bytes = axum::body::to_bytes(req.into_body(), 25 * 1024 * 1024).await.unwrap_or_default();
            let body = if bytes.is_empty() {
                Ok(Value::Null)
            } else {
                serde_json::from_slice::<Value>(&bytes).map_err(|_| ApiError::invalid_json())
            };
            let now = Instant::now();
            shared.write(|w| {
                let limit = route_limit(w, route);
                let scale = w.config.time_scale;
                let scaler = |d: Duration| if scale > 0.0 && scale != 1.0 { d.div_f64(scale) } else { d };
                match w.limiter.check(class.bucket, &class.key, limit, class.counts_global, scaler, now) {
                    Verdict::Limited { state, retry_after, global } => {
                        w.stats.rate_limited += 1;
                        if global {
                            w.stats.global_rate_limited += 1;
                            too_many(retry_after, Scope::Global, None)
                        } else {
                            too_many(retry_after, Scope::User, Some(&state))
                        }
                    }
                    Verdict::Allowed(state) => {
                        let result = match body {
                            Err(e) if has_body => Err(e),
                            Err(_) => rest::handle(w, route, &params, &query, &Value::Null, now),
                            Ok(b) => rest::handle(w, route, &params, &query, &b, now),
                        };
                        let mut resp = match result {
                            Ok(Reply { status, body }) => json_response(status, body.as_ref()),
                            Err(e) => error_response(&e),
                        };
                        bucket_headers(&mut resp, &state);
                        resp
                    }
                }
            })
        }
    };
    // Discord counts 401, 403 and 429 (except 429s of scope `shared`) towards the invalid-request limit.
    let status = response.status().as_u16();
    let shared_scope = response.headers().get("x-ratelimit-scope").is_some_and(|v| v == "shared");
    if matches!(status, 401 | 403) || (status == 429 && !shared_scope) {
        shared.write(|w| {
            let scale = w.config.time_scale;
            let scaler = |d: Duration| if scale > 0.0 && scale != 1.0 { d.div_f64(scale) } else { d };
            let (count, banned) = w.limiter.invalid(scaler, now);
            w.stats.invalid_requests += 1;
            w.stats.invalid_requests_peak = w.stats.invalid_requests_peak.max(count);
            w.stats.banned |= banned;
        });
    }
    response
}

enum Early {
    Error(ApiError),
    Banned(Duration),
    Fault(Fault),
}

fn route_limit(w: &World, route: &str) -> Limit {
    let l = w.limiter.limits();
    match route {
        routes::CREATE_MESSAGE => l.create_message,
        routes::EDIT_MESSAGE => l.edit_message,
        routes::DELETE_MESSAGE => l.delete_message,
        routes::CROSSPOST_MESSAGE => l.crosspost,
        _ => l.other,
    }
}
