//! The WebSocket gateway, following the Gateway documentation: HELLO on connect, IDENTIFY (token, intents and
//! shard checked, privileged intents only if switched on for the app) answered with READY and a GUILD_CREATE per
//! guild, heartbeats acknowledged, RESUME replaying the dispatches the session missed before RESUMED, or
//! INVALID_SESSION when the session is gone, and the documented close codes. Each connection is a task that wakes
//! on world changes and sends what was appended to its session's log since its cursor, so a dispatch is sent by
//! exactly one path whether it happens live or is replayed. JSON encoding only, without transport compression:
//! serenity 0.12 connects with `?v=10` alone and handles both text and zlib-compressed binary frames.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::payload::snowflake;
use crate::rest::application_flags;
use crate::server::Shared;
use crate::types::{Identify, intents};
use crate::world::{ConnCommand, Session, World};

/// Discord's close codes that the fake uses, with the reasons it sends.
pub(crate) fn close_reason(code: u16) -> &'static str {
    match code {
        4000 => "Unknown error.",
        4001 => "Unknown opcode.",
        4002 => "Error while decoding payload.",
        4003 => "Not authenticated.",
        4004 => "Authentication failed.",
        4005 => "Already authenticated.",
        4007 => "Invalid seq.",
        4008 => "Rate limited.",
        4009 => "Session timed out.",
        4010 => "Invalid shard.",
        4011 => "Sharding required.",
        4012 => "Invalid API version.",
        4013 => "Invalid intent(s).",
        4014 => "Disallowed intent(s).",
        _ => "",
    }
}

/// Whether a session survives the connection being closed with `code` (`None`: dropped without a close frame).
/// Codes the documentation marks "resume: false" end the session; so does a client closing with 1000 or 1001.
pub(crate) fn resumable_after(code: Option<u16>) -> bool {
    matches!(code, None | Some(4000 | 4002 | 4008)) || code.is_some_and(|c| !(1000..=1001).contains(&c) && c < 4000)
}

/// Why the connection loop ended.
enum End {
    /// Send a close frame with this code (and end the session if the code says so).
    Close(u16),
    /// Drop the TCP connection without a close frame.
    Drop,
    /// The client closed (with this code, if any) or the connection broke.
    ClientGone(Option<u16>),
    Shutdown,
}

struct Conn {
    id: u64,
    session: Option<String>,
    last_heartbeat: Instant,
    window_start: Instant,
    sent_in_window: u32,
}

pub(crate) async fn run(mut socket: WebSocket, shared: Arc<Shared>, query: String, mut stop: watch::Receiver<bool>) {
    let id = shared.write(|w| w.new_conn());
    let (interval, grace, heartbeat_ms) = shared.read(|w| {
        let interval = w.config.scaled(w.config.heartbeat_interval);
        (interval, w.config.heartbeat_grace, interval.as_millis().max(1) as u64)
    });
    let now = Instant::now();
    let mut conn = Conn { id, session: None, last_heartbeat: now, window_start: now, sent_in_window: 0 };
    let mut changes = shared.changed.subscribe();
    let end = match check_query(&query) {
        Err(code) => End::Close(code),
        Ok(()) => {
            let hello = json!({"op": 10, "d": {"heartbeat_interval": heartbeat_ms}, "s": null, "t": null});
            if socket.send(Message::Text(hello.to_string().into())).await.is_err() {
                End::ClientGone(None)
            } else {
                serve(&mut socket, &shared, &mut conn, &mut changes, &mut stop, interval, grace).await
            }
        }
    };
    let code = match end {
        End::Close(code) => {
            let frame = CloseFrame { code, reason: close_reason(code).into() };
            let _ = socket.send(Message::Close(Some(frame))).await;
            Some(code)
        }
        End::Drop => None,
        End::ClientGone(code) => {
            let _ = socket.flush().await;
            code
        }
        End::Shutdown => {
            let _ = socket.send(Message::Close(Some(CloseFrame { code: 1001, reason: "".into() }))).await;
            None
        }
    };
    shared.write(|w| {
        if let Some(s) = conn.session.as_ref().and_then(|s| w.sessions.get_mut(s)) {
            if s.conn == Some(conn.id) {
                s.conn = None;
            }
            if !resumable_after(code) {
                s.valid = false;
            }
        }
        w.conns.remove(&conn.id);
    });
}

/// `v=10` and `encoding=json` (the defaults when absent); no transport compression.
fn check_query(query: &str) -> Result<(), u16> {
    for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        match (k, v) {
            ("v", "10") | ("encoding", "json") => {}
            ("v", _) => return Err(4012),
            // etf and zlib-stream are not spoken here: fail loudly rather than send what the client cannot read.
            ("encoding", _) | ("compress", _) => return Err(4002),
            _ => {}
        }
    }
    Ok(())
}

async fn serve(
    socket: &mut WebSocket,
    shared: &Shared,
    conn: &mut Conn,
    changes: &mut watch::Receiver<u64>,
    stop: &mut watch::Receiver<bool>,
    interval: Duration,
    grace: Option<Duration>,
) -> End {
    loop {
        // Mark changes seen before looking, so a dispatch appended while we send still wakes the select below.
        changes.borrow_and_update();
        // Commands first (a forced close must not be preceded by dispatches queued after it), then new dispatches.
        let (command, frames) = shared.quiet(|w| outgoing(w, conn.id));
        if let Some(ConnCommand::Close(code)) = command {
            return code.map_or(End::Drop, End::Close);
        }
        if let Some(ConnCommand::Send(raw)) = command
            && socket.send(Message::Text(raw.into())).await.is_err()
        {
            return End::ClientGone(None);
        }
        for frame in frames {
            if socket.send(Message::Text(frame.into())).await.is_err() {
                return End::ClientGone(None);
            }
        }
        let heartbeat_deadline = grace.map(|g| conn.last_heartbeat + interval + g);
        tokio::select! {
            _ = stop.changed() => return End::Shutdown,
            _ = changes.changed() => {}
            _ = async {
                match heartbeat_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => return End::Close(4009),
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) => return End::ClientGone(None),
                Some(Ok(Message::Close(frame))) => return End::ClientGone(frame.map(|f| f.code)),
                Some(Ok(Message::Text(text))) => {
                    if let Some(end) = receive(socket, shared, conn, text.as_str()).await {
                        return end;
                    }
                }
                Some(Ok(Message::Binary(_))) => return End::Close(4002),
                Some(Ok(_)) => {}
            },
        }
    }
}

/// The next command for a connection and the dispatches its session appended since the connection's cursor.
fn outgoing(w: &mut World, conn: u64) -> (Option<ConnCommand>, Vec<String>) {
    let Some(c) = w.conns.get_mut(&conn) else { return (Some(ConnCommand::Close(None)), vec![]) };
    if let Some(cmd) = c.commands.pop_front() {
        return (Some(cmd), vec![]);
    }
    let Some(s) = c.session.as_ref().and_then(|s| w.sessions.get(s)) else { return (None, vec![]) };
    let frames: Vec<String> = s.log[c.cursor.min(s.log.len())..].iter().map(|(_, f)| f.clone()).collect();
    c.cursor = s.log.len();
    (None, frames)
}

async fn receive(socket: &mut WebSocket, shared: &Shared, conn: &mut Conn, text: &str) -> Option<End> {
    let Ok(payload) = serde_json::from_str::<Value>(text) else { return Some(End::Close(4002)) };
    let now = Instant::now();
    let limit = shared.read(|w| (w.config.rate_limits, w.config.scaled(w.config.rate_limits.gateway_sends.per)));
    if limit.0.enabled {
        if now.duration_since(conn.window_start) >= limit.1 {
            conn.window_start = now;
            conn.sent_in_window = 0;
        }
        conn.sent_in_window += 1;
        if conn.sent_in_window > limit.0.gateway_sends.max {
            return Some(End::Close(4008));
        }
    }
    let op = payload["op"].as_u64();
    let d = &payload["d"];
    match op {
        Some(1) => {
            conn.last_heartbeat = now;
            shared.write(|w| w.stats.heartbeats += 1);
            let ack = json!({"op": 11, "d": null, "s": null, "t": null});
            if socket.send(Message::Text(ack.to_string().into())).await.is_err() {
                return Some(End::ClientGone(None));
            }
            None
        }
        Some(2) => {
            if conn.session.is_some() {
                return Some(End::Close(4005));
            }
            match shared.write(|w| identify(w, conn.id, d)) {
                Ok(session) => {
                    conn.session = Some(session);
                    None
                }
                Err(code) => Some(End::Close(code)),
            }
        }
        Some(6) => {
            if conn.session.is_some() {
                return Some(End::Close(4005));
            }
            match shared.write(|w| resume(w, conn.id, d)) {
                Ok(Some(session)) => {
                    conn.session = Some(session);
                    None
                }
                Ok(None) => {
                    let invalid = json!({"op": 9, "d": false, "s": null, "t": null});
                    if socket.send(Message::Text(invalid.to_string().into())).await.is_err() {
                        return Some(End::ClientGone(None));
                    }
                    None
                }
                Err(code) => Some(End::Close(code)),
            }
        }
        // Presence updates, voice state updates, member and soundboard requests: accepted once identified. The
        // fake has no presences, voice or soundboards, so there is nothing to answer.
        Some(3 | 4 | 8 | 31) if conn.session.is_some() => None,
        Some(3 | 4 | 8 | 31) => Some(End::Close(4003)),
        _ => Some(End::Close(4001)),
    }
}

fn token_ok(d: &Value, token: &str) -> bool {
    let sent = d["token"].as_str().unwrap_or_default();
    sent == token || sent.strip_prefix("Bot ") == Some(token)
}

/// Checks an IDENTIFY and starts a session: READY, then a GUILD_CREATE for each guild of the shard.
fn identify(w: &mut World, conn: u64, d: &Value) -> Result<String, u16> {
    if !token_ok(d, &w.token) {
        return Err(4004);
    }
    let Some(intents_sent) = d["intents"].as_u64() else { return Err(4013) };
    if intents_sent & !intents::ALL != 0 {
        return Err(4013);
    }
    if intents_sent & intents::PRIVILEGED & !w.config.privileged_intents != 0 {
        return Err(4014);
    }
    let shard = match d.get("shard").and_then(Value::as_array) {
        None => None,
        Some(s) => {
            let id = s.first().and_then(Value::as_u64).unwrap_or(u64::MAX);
            let n = s.get(1).and_then(Value::as_u64).unwrap_or(0);
            if n == 0 || id >= n {
                return Err(4010);
            }
            Some((id as u32, n as u32))
        }
    };
    let session_id = format!("{:032x}", w.ids.next().wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let shard_pair = shard.unwrap_or((0, 1));
    w.sessions.insert(
        session_id.clone(),
        Session { intents: intents_sent, shard: shard_pair, seq: 0, log: vec![], valid: true, conn: Some(conn) },
    );
    if let Some(c) = w.conns.get_mut(&conn) {
        c.session = Some(session_id.clone());
        c.cursor = 0;
    }
    let mut redacted = d.clone();
    redacted["token"] = json!("<redacted>");
    w.identifies.push(Identify {
        intents: intents_sent,
        shard,
        compress: d["compress"].as_bool().unwrap_or(false),
        large_threshold: d["large_threshold"].as_u64(),
        payload: redacted,
    });
    w.stats.identifies += 1;
    w.session_starts_used += 1;
    let guilds = w.guilds_of_shard(shard_pair);
    let mut ready = json!({
        "v": 10,
        "user": w.current_user_json(),
        "private_channels": [],
        "guilds": guilds.iter().map(|g| json!({"id": g.to_string(), "unavailable": true})).collect::<Vec<_>>(),
        "session_id": session_id,
        "resume_gateway_url": w.gateway_url(),
        "application": {"id": w.config.application_id.to_string(), "flags": application_flags(w)},
    });
    if let Some((id, n)) = shard {
        ready["shard"] = json!([id, n]);
    }
    w.emit_to(&session_id, "READY", ready);
    if intents_sent & intents::GUILDS != 0 {
        let all_members = intents_sent & intents::GUILD_PRESENCES != 0;
        for g in guilds {
            let d = w.guild_create_json(g, all_members);
            w.emit_to(&session_id, "GUILD_CREATE", d);
        }
    }
    Ok(session_id)
}

/// Checks a RESUME: `Ok(Some(session))` replays from the client's sequence number and appends RESUMED;
/// `Ok(None)` means the session cannot be resumed (answered with INVALID_SESSION, `d: false`).
fn resume(w: &mut World, conn: u64, d: &Value) -> Result<Option<String>, u16> {
    if !token_ok(d, &w.token) {
        return Err(4004);
    }
    let session_id = d["session_id"].as_str().unwrap_or_default().to_string();
    let seq = d["seq"].as_u64().or_else(|| snowflake(&d["seq"])).unwrap_or(0);
    let Some(s) = w.sessions.get_mut(&session_id).filter(|s| s.valid) else { return Ok(None) };
    if seq > s.seq {
        return Err(4007);
    }
    // A session lives on one connection: a stale one still attached is closed as Discord does.
    let previous = s.conn.replace(conn);
    let cursor = s.log.iter().position(|(n, _)| *n > seq).unwrap_or(s.log.len());
    if let Some(old) = previous.filter(|old| *old != conn)
        && let Some(c) = w.conns.get_mut(&old)
    {
        c.session = None;
        c.commands.push_back(ConnCommand::Close(Some(4000)));
    }
    if let Some(c) = w.conns.get_mut(&conn) {
        c.session = Some(session_id.clone());
        c.cursor = cursor;
    }
    w.stats.resumes += 1;
    w.emit_to(&session_id, "RESUMED", json!({}));
    Ok(Some(session_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_closes_keep_the_session() {
        assert!(resumable_after(None));
        assert!(resumable_after(Some(4000)));
        assert!(!resumable_after(Some(4009)));
        assert!(!resumable_after(Some(4004)));
        assert!(!resumable_after(Some(1000)));
        assert!(!resumable_after(Some(1001)));
        assert!(resumable_after(Some(1006)));
    }

    #[test]
    fn query_parameters() {
        assert_eq!(check_query("v=10&encoding=json"), Ok(()));
        assert_eq!(check_query("v=10"), Ok(()));
        assert_eq!(check_query(""), Ok(()));
        assert_eq!(check_query("v=6"), Err(4012));
        assert_eq!(check_query("v=10&encoding=etf"), Err(4002));
        assert_eq!(check_query("v=10&compress=zlib-stream"), Err(4002));
    }
}
