//! Helpers shared by the tests: REST calls with the bot's token, and a minimal gateway client that records every
//! frame it receives so the conformance test can parse them all.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use webcare_fake_discord::{Config, FakeDiscord, RateLimits, intents};

/// Long enough for a loaded machine; every wait ends as soon as its condition holds.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client")
}

/// An answer: status, headers and the JSON body (`Null` for 204).
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
}

/// Calls `METHOD /path` (below `/api/v10`) with the bot's token and an optional JSON body.
pub async fn call(dc: &FakeDiscord, method: &str, path: &str, body: Option<Value>) -> Answer {
    call_with(dc, method, path, body, Some(&format!("Bot {}", dc.token()))).await
}

pub async fn call_with(dc: &FakeDiscord, method: &str, path: &str, body: Option<Value>, auth: Option<&str>) -> Answer {
    let url = format!("{}{path}", dc.rest_url());
    let mut req = client().request(method.parse().expect("method"), url);
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.expect("body");
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON answer") };
    Answer { status, headers, body }
}

/// A call that must succeed (2xx); returns the body.
pub async fn ok(dc: &FakeDiscord, method: &str, path: &str, body: Option<Value>) -> Value {
    let a = call(dc, method, path, body).await;
    assert!((200..300).contains(&a.status), "{method} {path} answered {}: {}", a.status, a.body);
    a.body
}

/// Sends a message as the bot.
pub async fn send(dc: &FakeDiscord, channel: impl std::fmt::Display, body: Value) -> Answer {
    call(dc, "POST", &format!("/channels/{channel}/messages"), Some(body)).await
}

/// A fake without rate limits, for tests about something else that send in bursts.
pub async fn unlimited() -> FakeDiscord {
    FakeDiscord::start_with(Config { rate_limits: RateLimits::off(), ..Config::default() }).await
}

pub const BOT_INTENTS: u64 =
    intents::GUILDS | intents::GUILD_MESSAGES | intents::DIRECT_MESSAGES | intents::MESSAGE_CONTENT;

/// The slash commands webcare registers.
pub fn webcare_commands() -> Value {
    json!([
        {"name": "status", "description": "Current notices", "type": 1},
        {"name": "stop", "description": "Stop updates", "type": 1},
        {"name": "ticket", "description": "Open a personal case", "type": 1, "options": [
            {"name": "subject", "description": "What is it about", "type": 3, "required": true},
            {"name": "urgent", "description": "Is it urgent", "type": 5},
        ]},
    ])
}

/// A plain gateway client. Every text frame it receives is kept in `frames`.
pub struct Gateway {
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    pub frames: Vec<Value>,
    pub seq: u64,
}

/// How a connection ended.
#[derive(Debug, PartialEq)]
pub enum Closed {
    Code(u16),
    /// The TCP connection ended without a close frame.
    Dropped,
}

impl Gateway {
    /// Connects to the URL `GET /gateway` answers, with `query` (e.g. `?v=10&encoding=json`).
    pub async fn connect(dc: &FakeDiscord, query: &str) -> Gateway {
        let url = ok(dc, "GET", "/gateway", None).await["url"].as_str().expect("url").to_string();
        let (ws, _) = tokio_tungstenite::connect_async(format!("{url}{query}")).await.expect("websocket connect");
        Gateway { ws, frames: vec![], seq: 0 }
    }

    pub async fn send(&mut self, payload: Value) {
        self.ws.send(Message::text(payload.to_string())).await.expect("send");
    }

    /// The next frame; panics on close or after [`WAIT`].
    pub async fn recv(&mut self) -> Value {
        match self.next().await {
            Ok(v) => v,
            Err(c) => panic!("connection closed: {c:?}"),
        }
    }

    async fn next(&mut self) -> Result<Value, Closed> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next()).await.expect("a frame within the wait");
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str()).expect("JSON frame");
                    if let Some(s) = v["s"].as_u64() {
                        self.seq = s;
                    }
                    self.frames.push(v.clone());
                    return Ok(v);
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(frame.map_or(Closed::Dropped, |f| Closed::Code(f.code.into())));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Err(Closed::Dropped),
            }
        }
    }

    /// Reads until the connection closes; panics if a dispatch arrives after `WAIT`.
    pub async fn closed(&mut self) -> Closed {
        loop {
            if let Err(c) = self.next().await {
                return c;
            }
        }
    }

    /// Reads frames until a dispatch of type `t`; returns its `d`.
    pub async fn dispatch(&mut self, t: &str) -> Value {
        loop {
            let f = self.recv().await;
            if f["op"] == 0 && f["t"] == t {
                return f["d"].clone();
            }
        }
    }

    /// Reads frames until one with this op.
    pub async fn op(&mut self, op: u64) -> Value {
        loop {
            let f = self.recv().await;
            if f["op"] == op {
                return f;
            }
        }
    }

    /// HELLO, then IDENTIFY with `intents`; returns READY's `d`.
    pub async fn identify(&mut self, dc: &FakeDiscord, intents: u64) -> Value {
        let hello = self.recv().await;
        assert_eq!(hello["op"], 10, "{hello}");
        self.send(json!({"op": 2, "d": {
            "token": dc.token(),
            "intents": intents,
            "properties": {"os": "linux", "browser": "webcare-test", "device": "webcare-test"},
            "shard": [0, 1],
            "compress": false,
            "large_threshold": 250,
        }}))
        .await;
        self.dispatch("READY").await
    }

    pub async fn close(mut self, code: u16) {
        let frame = tokio_tungstenite::tungstenite::protocol::CloseFrame { code: code.into(), reason: "".into() };
        let _ = self.ws.close(Some(frame)).await;
    }
}

/// Connects and identifies with webcare's intents; returns the client after READY and every GUILD_CREATE.
pub async fn ready(dc: &FakeDiscord, guilds: usize) -> Gateway {
    let mut gw = Gateway::connect(dc, "?v=10&encoding=json").await;
    gw.identify(dc, BOT_INTENTS).await;
    for _ in 0..guilds {
        gw.dispatch("GUILD_CREATE").await;
    }
    gw
}
