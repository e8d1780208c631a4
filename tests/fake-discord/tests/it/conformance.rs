//! serenity drops any gateway event it cannot parse without a word, and fails a REST call whose answer it cannot
//! parse. This test makes the fake emit every kind of payload it has (every dispatch, every op, the REST answers
//! the adapter reads) and parses each with serenity 0.12's model types, failing on any field error.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use serenity::model::application::{Command, CurrentApplicationInfo, Interaction};
use serenity::model::channel::{Channel, GuildChannel, Message, PrivateChannel};
use serenity::model::event::{Event, GatewayEvent};
use serenity::model::gateway::{BotGateway, Gateway as SerenityGateway};
use serenity::model::user::{CurrentUser, User};
use webcare_fake_discord::{MessageId, NewGuild, NewUser, SlashCommand, UserMessage, permissions};

use crate::common::{Gateway, WAIT, call, ok, ready, send, unlimited, webcare_commands};

fn parse<T: serde::de::DeserializeOwned>(what: &str, v: &Value) -> T {
    match serde_json::from_value::<T>(v.clone()) {
        Ok(t) => t,
        Err(e) => panic!("serenity cannot parse {what}: {e}\n{v:#}"),
    }
}

/// Parses a frame as serenity's shard does; returns the dispatch type for dispatches.
fn parse_frame(frame: &Value) -> Option<String> {
    let event: GatewayEvent = parse(&format!("op {} frame", frame["op"]), frame);
    match event {
        GatewayEvent::Dispatch(seq, event) => {
            assert_eq!(Some(seq), frame["s"].as_u64());
            let t = frame["t"].as_str().expect("t").to_string();
            assert!(!matches!(event, Event::Unknown(_)), "serenity does not know {t}: {frame}");
            Some(t)
        }
        GatewayEvent::Hello(interval) => {
            assert_eq!(Some(interval), frame["d"]["heartbeat_interval"].as_u64());
            None
        }
        _ => None,
    }
}

#[tokio::test]
async fn serenity_parses_every_payload_the_fake_emits() {
    let dc = unlimited().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo").bot_can_manage_messages());
    let support = dc.create_text_channel(guild, "support");
    let news = dc.create_announcement_channel(guild, "storingen");
    let staff = dc.create_role(guild, "staff", permissions::MANAGE_MESSAGES);
    let alice = dc.create_user(NewUser::named("alice").display_name("Alice"));
    let bob = dc.create_user(NewUser::named("bob"));
    let other_bot = dc.create_user(NewUser::bot("otherbot"));
    dc.add_member(guild, bob, &[staff]);
    ok(&dc, "PUT", &format!("/applications/{}/commands", dc.application_id()), Some(webcare_commands())).await;

    let mut gw = ready(&dc, 1).await;
    let mut seen = BTreeSet::new();

    // World changes while connected.
    let later = dc.create_text_channel(guild, "later");
    gw.dispatch("CHANNEL_CREATE").await;
    let second = dc.create_guild(NewGuild::named("Odido"));
    gw.dispatch("GUILD_CREATE").await;

    // What users do.
    let asked = dc.post(
        alice,
        support,
        UserMessage::text(&format!("<@{}> is er een storing? <@&{staff}> @everyone", dc.bot_user_id())).attach(
            "modem.png",
            "image/png",
            b"\x89PNG",
        ),
    );
    let d = gw.dispatch("MESSAGE_CREATE").await;
    let m: Message = parse("MESSAGE_CREATE d", &d);
    assert_eq!(m.guild_id.map(|g| g.get()), Some(guild.0));
    assert!(m.member.is_some(), "guild messages carry the author's member");
    assert_eq!(m.mentions.len(), 1);
    assert_eq!(m.attachments.len(), 1);
    dc.post(bob, support, UserMessage::text("antwoord").reply_to(asked.message_id));
    let d = gw.dispatch("MESSAGE_CREATE").await;
    let reply: Message = parse("reply", &d);
    assert!(reply.referenced_message.is_some());
    dc.post_text(other_bot, support, "I am a bot");
    let d = gw.dispatch("MESSAGE_CREATE").await;
    assert!(parse::<Message>("bot message", &d).author.bot);
    dc.edit(alice, support, asked.message_id, "nog steeds storing");
    gw.dispatch("MESSAGE_UPDATE").await;
    dc.dm_bot(alice, "mijn rekening klopt niet");
    let d = gw.dispatch("MESSAGE_CREATE").await;
    let dm: Message = parse("DM MESSAGE_CREATE", &d);
    assert!(dm.guild_id.is_none() && dm.member.is_none());
    dc.delete(bob, support, MessageId(reply.id.get()));
    gw.dispatch("MESSAGE_DELETE").await;

    // Interactions: a slash command in a guild and in a DM, a button press.
    let cmd = dc.run_command(alice, support, SlashCommand::new("ticket").option("subject", "factuur"));
    let d = gw.dispatch("INTERACTION_CREATE").await;
    match parse::<Interaction>("command interaction", &d) {
        Interaction::Command(c) => {
            assert_eq!(c.data.name, "ticket");
            assert_eq!(c.data.options[0].value.as_str(), Some("factuur"));
            assert!(c.member.is_some());
        }
        other => panic!("not a command: {other:?}"),
    }
    let dm_channel = dc.dm_channel(alice);
    dc.run_command(alice, dm_channel, SlashCommand::new("status"));
    let d = gw.dispatch("INTERACTION_CREATE").await;
    match parse::<Interaction>("DM command interaction", &d) {
        Interaction::Command(c) => assert!(c.member.is_none() && c.user.id.get() == alice.0),
        other => panic!("not a command: {other:?}"),
    }
    ok(
        &dc,
        "POST",
        &format!("/interactions/{}/{}/callback", cmd.interaction_id, cmd.token),
        Some(json!({
            "type": 4, "data": {"content": "Ticket geopend", "allowed_mentions": {"parse": []}}
        })),
    )
    .await;
    gw.dispatch("MESSAGE_CREATE").await;
    let original =
        ok(&dc, "GET", &format!("/webhooks/{}/{}/messages/@original", dc.application_id(), cmd.token), None).await;
    parse::<Message>("original response", &original);

    // What the bot does over REST, and the dispatches that follow.
    let sent = send(
        &dc,
        support,
        json!({
            "content": "Er is een storing in Utrecht.",
            "allowed_mentions": {"parse": []},
            "components": [{"type": 1, "components": [
                {"type": 2, "style": 2, "label": "Iets anders? Praat met een mens", "custom_id": "handoff"},
                {"type": 2, "style": 5, "label": "Status", "url": "https://example.nl/status"},
            ]}],
            "embeds": [{"title": "Storing", "description": "Internet in Utrecht", "color": 16711680,
                "fields": [{"name": "Sinds", "value": "10:00", "inline": true}]}],
            "message_reference": {"message_id": asked.message_id.to_string()},
        }),
    )
    .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let sent_msg: Message = parse("REST create message", &sent.body);
    gw.dispatch("MESSAGE_CREATE").await;
    let press = dc.press_button(bob, support, MessageId(sent_msg.id.get()), "handoff");
    let d = gw.dispatch("INTERACTION_CREATE").await;
    match parse::<Interaction>("component interaction", &d) {
        Interaction::Component(c) => {
            assert_eq!(c.data.custom_id, "handoff");
            assert_eq!(c.message.id, sent_msg.id);
        }
        other => panic!("not a component: {other:?}"),
    }
    ok(
        &dc,
        "POST",
        &format!("/interactions/{}/{}/callback", press.interaction_id, press.token),
        Some(json!({"type": 6})),
    )
    .await;
    let edited = ok(
        &dc,
        "PATCH",
        &format!("/channels/{support}/messages/{}", sent_msg.id),
        Some(json!({"content": "Opgelost"})),
    )
    .await;
    parse::<Message>("REST edit message", &edited);
    gw.dispatch("MESSAGE_UPDATE").await;
    let notice =
        ok(&dc, "POST", &format!("/channels/{news}/messages"), Some(json!({"content": "Storing voorbij"}))).await;
    gw.dispatch("MESSAGE_CREATE").await;
    let crossposted =
        ok(&dc, "POST", &format!("/channels/{news}/messages/{}/crosspost", notice["id"].as_str().unwrap()), None).await;
    parse::<Message>("REST crosspost", &crossposted);
    gw.dispatch("MESSAGE_UPDATE").await;
    let thread = call(
        &dc,
        "POST",
        &format!("/channels/{support}/threads"),
        Some(json!({"name": "alice", "type": 12, "invitable": false})),
    )
    .await;
    assert_eq!(thread.status, 201, "{}", thread.body);
    parse::<GuildChannel>("REST start thread", &thread.body);
    gw.dispatch("THREAD_CREATE").await;
    let a = call(&dc, "DELETE", &format!("/channels/{support}/messages/{}", asked.message_id), None).await;
    assert_eq!(a.status, 204);
    gw.dispatch("MESSAGE_DELETE").await;

    // Heartbeat, op 1, op 7, a drop and a resume with replay, an invalid session.
    gw.send(json!({"op": 1, "d": gw.seq})).await;
    gw.op(11).await;
    dc.request_heartbeat();
    gw.op(1).await;
    dc.send_reconnect();
    gw.op(7).await;
    let session = gw.frames.iter().find(|f| f["t"] == "READY").unwrap()["d"]["session_id"].clone();
    let last = gw.seq;
    dc.drop_gateway(None);
    gw.closed().await;
    dc.post_text(alice, later, "gemist");
    let mut again = Gateway::connect(&dc, "?v=10").await;
    again.op(10).await;
    again
        .send(json!({"op": 6, "d": {"token": format!("Bot {}", dc.token()), "session_id": session, "seq": last}}))
        .await;
    again.dispatch("MESSAGE_CREATE").await;
    again.dispatch("RESUMED").await;
    let mut stale = Gateway::connect(&dc, "?v=10").await;
    stale.op(10).await;
    stale.send(json!({"op": 6, "d": {"token": dc.token(), "session_id": "unknown", "seq": 1}})).await;
    stale.op(9).await;

    for frame in gw.frames.iter().chain(&again.frames).chain(&stale.frames) {
        if let Some(t) = parse_frame(frame) {
            seen.insert(t);
        }
    }
    let expected = [
        "READY",
        "GUILD_CREATE",
        "CHANNEL_CREATE",
        "MESSAGE_CREATE",
        "MESSAGE_UPDATE",
        "MESSAGE_DELETE",
        "INTERACTION_CREATE",
        "THREAD_CREATE",
        "RESUMED",
    ];
    for t in expected {
        assert!(seen.contains(t), "no {t} was emitted: {seen:?}");
    }
    let ops: BTreeSet<u64> =
        gw.frames.iter().chain(&again.frames).chain(&stale.frames).filter_map(|f| f["op"].as_u64()).collect();
    assert_eq!(ops, [0, 1, 7, 9, 10, 11].into_iter().collect());

    // REST answers the adapter reads.
    parse::<SerenityGateway>("GET /gateway", &ok(&dc, "GET", "/gateway", None).await);
    let bot_gateway: BotGateway = parse("GET /gateway/bot", &ok(&dc, "GET", "/gateway/bot", None).await);
    assert_eq!(bot_gateway.shards, 1);
    let me: CurrentUser = parse("GET /users/@me", &ok(&dc, "GET", "/users/@me", None).await);
    assert!(me.bot && me.id.get() == dc.bot_user_id().0);
    parse::<User>("GET /users/{id}", &ok(&dc, "GET", &format!("/users/{alice}"), None).await);
    parse::<CurrentApplicationInfo>("GET /applications/@me", &ok(&dc, "GET", "/applications/@me", None).await);
    let dm_json = ok(&dc, "POST", "/users/@me/channels", Some(json!({"recipient_id": alice.to_string()}))).await;
    parse::<PrivateChannel>("POST /users/@me/channels", &dm_json);
    assert!(matches!(parse::<Channel>("DM as Channel", &dm_json), Channel::Private(_)));
    let channel = ok(&dc, "GET", &format!("/channels/{news}"), None).await;
    assert!(matches!(parse::<Channel>("GET /channels/{id}", &channel), Channel::Guild(_)));
    let history = ok(&dc, "GET", &format!("/channels/{later}/messages?limit=10"), None).await;
    parse::<Vec<Message>>("GET /channels/{id}/messages", &history);
    let commands = ok(&dc, "GET", &format!("/applications/{}/commands", dc.application_id()), None).await;
    assert_eq!(parse::<Vec<Command>>("GET commands", &commands).len(), 3);
    let guild_cmd = ok(
        &dc,
        "POST",
        &format!("/applications/{}/guilds/{second}/commands", dc.application_id()),
        Some(json!({"name": "status", "description": "Current notices"})),
    )
    .await;
    parse::<Command>("POST guild command", &guild_cmd);
    let err = call(&dc, "GET", "/channels/1/messages", None).await;
    let parsed: serenity::http::DiscordJsonError = parse("error body", &err.body);
    assert_eq!(parsed.code, 10003);
    let form = send(&dc, support, json!({"content": "x".repeat(2001)})).await;
    let parsed: serenity::http::DiscordJsonError = parse("form error body", &form.body);
    assert_eq!((parsed.code, parsed.errors[0].path.as_str()), (50035, "content"));
    assert!(dc.wait_until(WAIT, || dc.interaction(cmd.interaction_id).is_some()).await);
}
