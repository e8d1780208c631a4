//! The gateway handshake with a plain WebSocket client: HELLO, IDENTIFY and READY, GUILD_CREATE, heartbeats, the
//! close codes for bad identifies, the MESSAGE_CONTENT intent, intent filtering, RESUME with replay and invalid
//! sessions.

use std::time::Duration;

use serde_json::json;
use webcare_fake_discord::{Config, FakeDiscord, NewGuild, NewUser, intents};

use crate::common::{BOT_INTENTS, Closed, Gateway, WAIT, ready, unlimited};

#[tokio::test]
async fn hello_identify_ready_and_guild_create() {
    let dc = FakeDiscord::start_with(Config { time_scale: 1000.0, heartbeat_grace: None, ..Config::default() }).await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let support = dc.create_text_channel(guild, "support");
    let news = dc.create_announcement_channel(guild, "storingen");
    let alice = dc.create_user(NewUser::named("alice"));
    dc.post_text(alice, support, "before the bot connected");
    let mut gw = Gateway::connect(&dc, "?v=10&encoding=json").await;
    let hello = gw.recv().await;
    // 41250 ms scaled 1000x.
    assert_eq!(hello, json!({"op": 10, "d": {"heartbeat_interval": 41}, "s": null, "t": null}));
    gw.send(json!({"op": 2, "d": {"token": dc.token(), "intents": BOT_INTENTS,
        "properties": {"os": "linux", "browser": "x", "device": "x"}}}))
        .await;
    let ready = gw.recv().await;
    assert_eq!((ready["op"].clone(), ready["t"].clone(), ready["s"].clone()), (json!(0), json!("READY"), json!(1)));
    let d = &ready["d"];
    assert_eq!(d["v"], 10);
    assert_eq!(d["user"]["id"], dc.bot_user_id().to_string());
    assert_eq!(d["guilds"], json!([{"id": guild.to_string(), "unavailable": true}]));
    assert_eq!(d["resume_gateway_url"], dc.gateway_url());
    assert_eq!(d["application"]["id"], dc.application_id().to_string());
    assert!(d["session_id"].as_str().is_some_and(|s| !s.is_empty()));
    let g = gw.recv().await;
    assert_eq!((g["t"].clone(), g["s"].clone()), (json!("GUILD_CREATE"), json!(2)));
    let channels: Vec<_> =
        g["d"]["channels"].as_array().unwrap().iter().map(|c| (c["name"].clone(), c["type"].clone())).collect();
    assert_eq!(channels, vec![(json!("support"), json!(0)), (json!("storingen"), json!(5))]);
    assert_eq!(g["d"]["features"], json!(["COMMUNITY", "NEWS"]));
    // Without GUILD_PRESENCES only the bot's own member is sent.
    let members = g["d"]["members"].as_array().unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(members[0]["user"]["id"], dc.bot_user_id().to_string());
    assert_eq!(g["d"]["roles"][0]["name"], "@everyone");
    let _ = news;
    let identify = &dc.identifies()[0];
    assert_eq!(identify.intents, BOT_INTENTS);
    assert_eq!(identify.payload["token"], "<redacted>");
    // The message posted before the bot connected is not replayed to a new session.
    gw.send(json!({"op": 1, "d": 2})).await;
    assert_eq!(gw.recv().await, json!({"op": 11, "d": null, "s": null, "t": null}));
    assert_eq!(dc.ready_connections(), 1);
}

#[tokio::test]
async fn a_client_that_stops_heartbeating_is_closed_with_4009() {
    let config = Config { time_scale: 100.0, heartbeat_grace: Some(Duration::from_millis(50)), ..Config::default() };
    let dc = FakeDiscord::start_with(config).await;
    let mut gw = Gateway::connect(&dc, "?v=10").await;
    gw.identify(&dc, BOT_INTENTS).await;
    assert_eq!(gw.closed().await, Closed::Code(4009));
    assert!(dc.wait_until(WAIT, || dc.open_connections() == 0).await);
}

fn session_of(gw: &Gateway) -> String {
    let ready = gw.frames.iter().find(|f| f["t"] == "READY").expect("READY");
    ready["d"]["session_id"].as_str().expect("session_id").to_string()
}

async fn identify_closes(dc: &FakeDiscord, query: &str, d: serde_json::Value) -> Closed {
    let mut gw = Gateway::connect(dc, query).await;
    // A refused query closes the connection before HELLO.
    if query == "?v=10" {
        gw.op(10).await;
    }
    gw.send(json!({"op": 2, "d": d})).await;
    gw.closed().await
}

#[tokio::test]
async fn bad_identifies_get_the_documented_close_codes() {
    let dc = unlimited().await;
    let t = dc.token();
    assert_eq!(identify_closes(&dc, "?v=10", json!({"token": "nope", "intents": 1})).await, Closed::Code(4004));
    assert_eq!(identify_closes(&dc, "?v=10", json!({"token": t, "intents": 1u64 << 40})).await, Closed::Code(4013));
    assert_eq!(identify_closes(&dc, "?v=10", json!({"token": t})).await, Closed::Code(4013));
    let privileged = intents::GUILDS | intents::GUILD_MEMBERS;
    assert_eq!(identify_closes(&dc, "?v=10", json!({"token": t, "intents": privileged})).await, Closed::Code(4014));
    assert_eq!(
        identify_closes(&dc, "?v=10", json!({"token": t, "intents": 1, "shard": [1, 1]})).await,
        Closed::Code(4010)
    );
    assert_eq!(identify_closes(&dc, "?v=9", json!({"token": t, "intents": 1})).await, Closed::Code(4012));
    assert_eq!(identify_closes(&dc, "?v=10&compress=zlib-stream", json!({})).await, Closed::Code(4002));

    let mut gw = Gateway::connect(&dc, "?v=10").await;
    gw.op(10).await;
    gw.send(json!({"op": 3, "d": {"status": "online"}})).await;
    assert_eq!(gw.closed().await, Closed::Code(4003), "a payload before identifying");
    let mut gw = Gateway::connect(&dc, "?v=10").await;
    gw.identify(&dc, BOT_INTENTS).await;
    gw.send(json!({"op": 2, "d": {"token": t, "intents": 1}})).await;
    assert_eq!(gw.closed().await, Closed::Code(4005));
    let mut gw = Gateway::connect(&dc, "?v=10").await;
    gw.op(10).await;
    gw.send(json!({"op": 99, "d": null})).await;
    assert_eq!(gw.closed().await, Closed::Code(4001));
    let mut gw = Gateway::connect(&dc, "?v=10").await;
    gw.op(10).await;
    gw.send(json!("not a payload")).await;
    assert_eq!(gw.closed().await, Closed::Code(4001));
    // The privileged intent is fine once the application has it.
    let members =
        FakeDiscord::start_with(Config { privileged_intents: intents::PRIVILEGED, ..Config::default() }).await;
    let mut gw = Gateway::connect(&members, "?v=10").await;
    assert_eq!(gw.identify(&members, privileged).await["v"], 10);
}

#[tokio::test]
async fn without_message_content_guild_messages_arrive_empty_except_mentions_and_dms() {
    let dc = unlimited().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let support = dc.create_text_channel(guild, "support");
    let alice = dc.create_user(NewUser::named("alice"));
    let mut gw = Gateway::connect(&dc, "?v=10&encoding=json").await;
    gw.identify(&dc, intents::GUILDS | intents::GUILD_MESSAGES | intents::DIRECT_MESSAGES).await;
    gw.dispatch("GUILD_CREATE").await;
    dc.post(alice, support, webcare_fake_discord::UserMessage::text("storing?").attach("a.txt", "text/plain", b"x"));
    let d = gw.dispatch("MESSAGE_CREATE").await;
    assert_eq!((d["content"].clone(), d["attachments"].clone()), (json!(""), json!([])));
    assert_eq!(d["author"]["id"], alice.to_string());
    dc.post_text(alice, support, &format!("<@{}> storing?", dc.bot_user_id()));
    assert_eq!(gw.dispatch("MESSAGE_CREATE").await["content"], format!("<@{}> storing?", dc.bot_user_id()));
    dc.dm_bot(alice, "rekening");
    let d = gw.dispatch("MESSAGE_CREATE").await;
    assert_eq!(d["content"], "rekening");
    assert!(d.get("guild_id").is_none() && d.get("member").is_none());
}

#[tokio::test]
async fn intents_decide_which_events_arrive() {
    let dc = unlimited().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let support = dc.create_text_channel(guild, "support");
    let alice = dc.create_user(NewUser::named("alice"));
    let mut gw = Gateway::connect(&dc, "?v=10").await;
    let ready = gw.identify(&dc, intents::DIRECT_MESSAGES | intents::MESSAGE_CONTENT).await;
    assert_eq!(ready["guilds"].as_array().unwrap().len(), 1, "READY lists guilds regardless of GUILDS");
    dc.post_text(alice, support, "not for this bot");
    dc.dm_bot(alice, "for this bot");
    // The next dispatch is the DM: neither GUILD_CREATE nor the guild message was sent.
    let f = gw.op(0).await;
    assert_eq!(
        (f["t"].clone(), f["d"]["content"].clone(), f["s"].clone()),
        (json!("MESSAGE_CREATE"), json!("for this bot"), json!(2))
    );
}

#[tokio::test]
async fn resume_replays_missed_dispatches_with_their_sequence_numbers() {
    let dc = unlimited().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let support = dc.create_text_channel(guild, "support");
    let alice = dc.create_user(NewUser::named("alice"));
    let mut gw = ready(&dc, 1).await;
    let session = session_of(&gw);
    dc.post_text(alice, support, "one");
    gw.dispatch("MESSAGE_CREATE").await;
    let seen = gw.seq;
    dc.drop_gateway(Some(4000));
    assert_eq!(gw.closed().await, Closed::Code(4000));
    dc.post_text(alice, support, "two");
    dc.post_text(alice, support, "three");
    let mut again = Gateway::connect(&dc, "?v=10").await;
    again.op(10).await;
    again.send(json!({"op": 6, "d": {"token": dc.token(), "session_id": session, "seq": seen}})).await;
    let two = again.recv().await;
    let three = again.recv().await;
    let resumed = again.recv().await;
    assert_eq!((two["d"]["content"].clone(), two["s"].clone()), (json!("two"), json!(seen + 1)));
    assert_eq!((three["d"]["content"].clone(), three["s"].clone()), (json!("three"), json!(seen + 2)));
    assert_eq!((resumed["t"].clone(), resumed["s"].clone()), (json!("RESUMED"), json!(seen + 3)));
    dc.post_text(alice, support, "four");
    assert_eq!(again.dispatch("MESSAGE_CREATE").await["content"], "four");
    assert_eq!(dc.stats().resumes, 1);
    // A sequence number from the future is refused.
    drop(again);
    let mut bad = Gateway::connect(&dc, "?v=10").await;
    bad.op(10).await;
    bad.send(json!({"op": 6, "d": {"token": dc.token(), "session_id": session, "seq": seen + 100}})).await;
    assert_eq!(bad.closed().await, Closed::Code(4007));
}

#[tokio::test]
async fn sessions_end_on_4009_on_a_clean_client_close_and_when_expired() {
    let dc = unlimited().await;
    for how in ["4009", "client-1000", "expired", "invalidated"] {
        let mut gw = ready(&dc, 0).await;
        let session = session_of(&gw);
        let seq = gw.seq;
        match how {
            "4009" => {
                dc.drop_gateway(Some(4009));
                assert_eq!(gw.closed().await, Closed::Code(4009));
            }
            "client-1000" => gw.close(1000).await,
            "expired" => {
                dc.expire_sessions();
                dc.drop_gateway(None);
                assert_eq!(gw.closed().await, Closed::Dropped);
            }
            _ => {
                dc.invalidate_sessions(false);
                assert_eq!(gw.op(9).await["d"], false);
            }
        }
        assert!(dc.wait_until(WAIT, || dc.open_connections() <= usize::from(how == "invalidated")).await);
        let mut again = Gateway::connect(&dc, "?v=10").await;
        again.op(10).await;
        again.send(json!({"op": 6, "d": {"token": dc.token(), "session_id": session, "seq": seq}})).await;
        assert_eq!(again.op(9).await, json!({"op": 9, "d": false, "s": null, "t": null}), "{how}");
        // INVALID_SESSION leaves the connection open for a new IDENTIFY.
        again.send(json!({"op": 2, "d": {"token": dc.token(), "intents": BOT_INTENTS}})).await;
        assert_eq!(again.dispatch("READY").await["v"], 10, "{how}");
    }
}
