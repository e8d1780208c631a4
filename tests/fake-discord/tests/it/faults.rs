//! Injected faults: 5xx, 429 of each scope, 50007 and other Discord errors, slow answers and dropped HTTP
//! connections on chosen routes; gateway drops with and without close codes, Reconnect requests; and a clean
//! shutdown that ends gateway connections.

use std::time::Duration;

use serde_json::json;
use webcare_fake_discord::{FakeDiscord, Fault, NewGuild, NewUser, Scope, routes};

use crate::common::{Closed, Gateway, WAIT, call, client, ready, send, unlimited};

#[tokio::test]
async fn the_next_calls_of_a_route_answer_with_the_injected_fault() {
    let dc = unlimited().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let c = dc.create_text_channel(guild, "support");
    dc.inject(routes::CREATE_MESSAGE, 2, Fault::ServerError { status: 502 });
    dc.inject(routes::CREATE_MESSAGE, 1, Fault::cannot_message_user());
    dc.inject(
        routes::CREATE_MESSAGE,
        1,
        Fault::TooManyRequests { retry_after: Duration::from_millis(1500), scope: Scope::Shared },
    );
    let a = send(&dc, c, json!({"content": "x"})).await;
    assert_eq!((a.status, a.body), (502, json!({"message": "502: Bad Gateway", "code": 0})));
    assert_eq!(send(&dc, c, json!({"content": "x"})).await.status, 502);
    let a = send(&dc, c, json!({"content": "x"})).await;
    assert_eq!((a.status, a.body), (403, json!({"message": "Cannot send messages to this user", "code": 50007})));
    let a = send(&dc, c, json!({"content": "x"})).await;
    assert_eq!(a.status, 429);
    assert_eq!(a.body, json!({"message": "The resource is being rate limited.", "retry_after": 1.5, "global": false}));
    assert_eq!(
        (a.header("x-ratelimit-scope").as_deref(), a.header("retry-after").as_deref()),
        (Some("shared"), Some("2"))
    );
    // Other routes are not affected, and the queue is used up.
    assert_eq!(call(&dc, "GET", "/users/@me", None).await.status, 200);
    assert_eq!(send(&dc, c, json!({"content": "x"})).await.status, 200);
    let stats = dc.stats();
    // The 403 counts as invalid, the shared 429 does not.
    assert_eq!((stats.faults, stats.invalid_requests, stats.deliveries()), (4, 1, 1));
    assert_eq!(dc.visible_bot_messages(c).len(), 1);
    dc.inject(routes::CREATE_MESSAGE, 5, Fault::missing_permissions());
    dc.clear_faults();
    assert_eq!(send(&dc, c, json!({"content": "y"})).await.status, 200);
}

#[tokio::test]
async fn slow_answers_and_dropped_connections() {
    let dc = unlimited().await;
    dc.inject(routes::GET_CURRENT_USER, 1, Fault::Delay(Duration::from_millis(300)));
    let started = tokio::time::Instant::now();
    assert_eq!(call(&dc, "GET", "/users/@me", None).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    dc.inject(routes::GET_CURRENT_USER, 1, Fault::DropConnection);
    let err = client()
        .get(format!("{}/users/@me", dc.rest_url()))
        .header("Authorization", format!("Bot {}", dc.token()))
        .send()
        .await;
    assert!(err.is_err(), "the connection closed without an answer");
    assert_eq!(call(&dc, "GET", "/users/@me", None).await.status, 200);
}

#[tokio::test]
async fn gateway_drops_reconnect_requests_and_heartbeat_requests() {
    let dc = unlimited().await;
    let mut gw = ready(&dc, 0).await;
    dc.send_reconnect();
    assert_eq!(gw.op(7).await, json!({"op": 7, "d": null, "s": null, "t": null}));
    dc.request_heartbeat();
    assert_eq!(gw.op(1).await["d"], serde_json::Value::Null);
    dc.drop_gateway(None);
    assert_eq!(gw.closed().await, Closed::Dropped);
    let mut gw = ready(&dc, 0).await;
    dc.drop_gateway(Some(4004));
    assert_eq!(gw.closed().await, Closed::Code(4004));
    assert!(dc.wait_until(WAIT, || dc.open_connections() == 0).await);
    assert_eq!(dc.stats().identifies, 2);
}

#[tokio::test]
async fn a_new_resume_takes_the_session_from_a_stale_connection() {
    let dc = unlimited().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let c = dc.create_text_channel(guild, "support");
    let alice = dc.create_user(NewUser::named("alice"));
    let mut old = ready(&dc, 1).await;
    let session = old.frames.iter().find(|f| f["t"] == "READY").unwrap()["d"]["session_id"].clone();
    let mut new = Gateway::connect(&dc, "?v=10").await;
    new.op(10).await;
    new.send(json!({"op": 6, "d": {"token": dc.token(), "session_id": session, "seq": old.seq}})).await;
    new.dispatch("RESUMED").await;
    assert_eq!(old.closed().await, Closed::Code(4000));
    dc.post_text(alice, c, "once");
    assert_eq!(new.dispatch("MESSAGE_CREATE").await["content"], "once");
}

#[tokio::test]
async fn shutdown_closes_gateway_connections_and_stops_serving() {
    let dc = FakeDiscord::start().await;
    let mut gw = ready(&dc, 0).await;
    let url = dc.rest_url();
    dc.shutdown().await;
    assert_eq!(gw.closed().await, Closed::Code(1001));
    assert!(client().get(format!("{url}/gateway")).send().await.is_err());
}
