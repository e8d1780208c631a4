//! The HTTP side: an axum router behind a hand-written accept loop on 127.0.0.1. The loop is ours rather than
//! `axum::serve` for two reasons: an injected "connection drop" must be able to close one connection without an
//! answer, and shutdown must end long polls that are still waiting instead of waiting for them.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::api::{self, ApiError, METHODS};
use crate::params::Params;
use crate::types::Fault;
use crate::world::World;

/// What the server, the webhook sender and the test handle share.
pub(crate) struct Shared {
    pub token: String,
    world: Mutex<World>,
    /// Bumped after every change to the world; long polls, the webhook sender and `wait_until` watch it.
    pub changed: watch::Sender<u64>,
}

impl Shared {
    pub fn new(token: String, world: World) -> Shared {
        Shared { token, world: Mutex::new(world), changed: watch::Sender::new(0) }
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
}

/// Lets a handler close the connection its request came on.
#[derive(Clone)]
struct Hangup(Arc<Notify>);

pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let router = Router::new().fallback(route).with_state(shared);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let router = router.clone();
                connections.spawn(async move {
                    let hangup = Hangup(Arc::new(Notify::new()));
                    let notified = hangup.0.clone();
                    let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                        req.extensions_mut().insert(hangup.clone());
                        let router = router.clone();
                        async move { Ok::<_, Infallible>(router.oneshot(req.map(Body::new)).await.unwrap_or_else(|e| match e {})) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    // Dropping the connection future closes the socket without an answer.
                    tokio::select! {
                        _ = connection => {}
                        _ = notified.notified() => {}
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.shutdown().await;
}

async fn route(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    if let Some(rest) = path.strip_prefix("/file/bot") {
        return download(&shared, rest);
    }
    let Some((token, method)) = path.strip_prefix("/bot").and_then(|rest| rest.split_once('/')) else {
        return ApiError::not_found().into_response();
    };
    if token != shared.token {
        return ApiError::unauthorized().into_response();
    }
    let Some(method) = METHODS.iter().find(|m| m.eq_ignore_ascii_case(method)).copied() else {
        return ApiError::not_found().into_response();
    };
    let fault = shared.write(|w| {
        *w.stats.calls.entry(method.to_string()).or_default() += 1;
        let fault = w.faults.get_mut(method).and_then(|q| q.pop_front());
        if fault.is_some() {
            w.stats.faults += 1;
        }
        fault
    });
    match fault {
        None => {}
        Some(Fault::TooManyRequests { retry_after }) => {
            return ApiError::too_many_requests(retry_after).into_response();
        }
        Some(Fault::ServerError { status }) => return ApiError::server_error(status).into_response(),
        Some(Fault::Error { code, description }) => return ApiError::new(code, description).into_response(),
        Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
        Some(Fault::DropConnection) => {
            if let Some(Hangup(n)) = req.extensions().get::<Hangup>() {
                n.notify_one();
            }
            // The connection task drops this handler together with the connection.
            std::future::pending::<()>().await;
        }
    }
    let params = match Params::from_request(req).await {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    match api::call(&shared, method, params).await {
        Ok(ok) => ok.into_response(),
        Err(e) => e.into_response(),
    }
}

fn download(shared: &Shared, rest: &str) -> Response {
    let Some((token, file_path)) = rest.split_once('/') else {
        return ApiError::not_found().into_response();
    };
    if token != shared.token {
        return ApiError::unauthorized().into_response();
    }
    let bytes = shared.read(|w| w.files.values().find(|f| f.path == file_path).map(|f| f.bytes.clone()));
    match bytes {
        Some(b) => ([(header::CONTENT_TYPE, "application/octet-stream")], b).into_response(),
        None => ApiError::not_found().into_response(),
    }
}
