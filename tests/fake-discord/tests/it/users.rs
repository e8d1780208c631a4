//! The user side: posts with mentions, replies and attachments, DMs, edits and deletions as the bot receives them;
//! slash commands with options; button presses answered by updating, deferring, editing the original response
//! and following up; and `wait_until`.

use std::time::Duration;

use serde_json::json;
use webcare_fake_discord::{NewGuild, NewUser, OptionValue, SlashCommand, UserMessage, message_flags};

use crate::common::{WAIT, call, client, ok, ready, unlimited, webcare_commands};

#[tokio::test]
async fn posts_carry_mentions_replies_and_attachments() {
    let dc = unlimited().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let support = dc.create_text_channel(guild, "support");
    let role = dc.create_role(guild, "monteurs", 0);
    let alice = dc.create_user(NewUser::named("alice"));
    let bob = dc.create_user(NewUser::named("bob"));
    dc.add_member(guild, bob, &[]);
    let mut gw = ready(&dc, 1).await;
    let first = dc.post(
        alice,
        support,
        UserMessage::text(&format!("<@{bob}> <@&{role}> @everyone")).attach("foto.jpg", "image/jpeg", b"JPEG"),
    );
    let d = gw.dispatch("MESSAGE_CREATE").await;
    assert_eq!(d["id"], first.message_id.to_string());
    assert_eq!(
        (d["guild_id"].clone(), d["channel_id"].clone()),
        (json!(guild.to_string()), json!(support.to_string()))
    );
    assert_eq!(d["mentions"][0]["id"], bob.to_string());
    assert!(d["mentions"][0]["member"]["roles"].is_array(), "mentions carry a partial member in guilds");
    assert_eq!(d["mention_roles"], json!([role.to_string()]));
    assert_eq!(d["mention_everyone"], true, "members may mention everyone by default");
    assert!(d["member"]["joined_at"].is_string() && d["member"].get("user").is_none());
    let url = d["attachments"][0]["url"].as_str().unwrap().to_string();
    assert_eq!(d["attachments"][0]["size"], 4);
    assert_eq!(client().get(url).send().await.unwrap().bytes().await.unwrap().as_ref(), b"JPEG");
    dc.post(bob, support, UserMessage::text("ja").reply_to(first.message_id));
    let d = gw.dispatch("MESSAGE_CREATE").await;
    assert_eq!(
        (d["type"].clone(), d["message_reference"]["message_id"].clone()),
        (json!(19), json!(first.message_id.to_string()))
    );
    assert_eq!(d["referenced_message"]["author"]["id"], alice.to_string());
    dc.edit(alice, support, first.message_id, "bewerkt");
    let d = gw.dispatch("MESSAGE_UPDATE").await;
    assert_eq!((d["content"].clone(), d["edited_timestamp"].is_string()), (json!("bewerkt"), true));
    dc.delete(alice, support, first.message_id);
    let d = gw.dispatch("MESSAGE_DELETE").await;
    assert_eq!(
        d,
        json!({"id": first.message_id.to_string(), "channel_id": support.to_string(), "guild_id": guild.to_string()})
    );
    assert!(dc.is_deleted(support, first.message_id));
    let dm = dc.dm_bot(bob, "privé");
    let d = gw.dispatch("MESSAGE_CREATE").await;
    assert_eq!(d["channel_id"], dm.channel_id.to_string());
    assert_eq!(dc.existing_dm_channel(bob), Some(dm.channel_id));
}

#[tokio::test]
async fn slash_commands_arrive_with_their_options_and_the_right_user_fields() {
    let dc = unlimited().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let support = dc.create_text_channel(guild, "support");
    let alice = dc.create_user(NewUser::named("alice").locale("nl"));
    ok(&dc, "PUT", &format!("/applications/{}/commands", dc.application_id()), Some(webcare_commands())).await;
    let mut gw = ready(&dc, 1).await;
    let run = dc.run_command(
        alice,
        support,
        SlashCommand::new("ticket").option("subject", "factuur").option_value("urgent", OptionValue::Boolean(true)),
    );
    let d = gw.dispatch("INTERACTION_CREATE").await;
    assert_eq!(d["id"], run.interaction_id.to_string());
    assert_eq!((d["type"].clone(), d["token"].clone(), d["version"].clone()), (json!(2), json!(run.token), json!(1)));
    assert_eq!(d["data"]["name"], "ticket");
    assert_eq!(
        d["data"]["options"],
        json!([{"name": "subject", "type": 3, "value": "factuur"}, {"name": "urgent", "type": 5, "value": true}])
    );
    assert_eq!(d["member"]["user"]["id"], alice.to_string());
    assert!(d["member"]["permissions"].is_string() && d.get("user").is_none());
    assert_eq!(
        (d["guild_id"].clone(), d["context"].clone(), d["locale"].clone()),
        (json!(guild.to_string()), json!(0), json!("nl"))
    );
    let dm = dc.dm_channel(alice);
    dc.run_command(alice, dm, SlashCommand::new("stop"));
    let d = gw.dispatch("INTERACTION_CREATE").await;
    assert_eq!(
        (d["user"]["id"].clone(), d.get("member").is_none(), d["context"].clone()),
        (json!(alice.to_string()), true, json!(1))
    );
}

/// The message a test-side call panicked with (the fake refuses misuse loudly, as Discord would refuse it).
fn panic_message(f: impl FnOnce()) -> String {
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).expect_err("the call should be refused");
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

#[tokio::test]
async fn an_unregistered_command_cannot_be_run() {
    let dc = unlimited().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let support = dc.create_text_channel(guild, "support");
    let alice = dc.create_user(NewUser::named("alice"));
    let message = panic_message(|| {
        dc.run_command(alice, support, SlashCommand::new("status"));
    });
    assert!(message.contains("registered no command /status"), "{message}");
}

#[tokio::test]
async fn a_required_option_must_be_given() {
    let dc = unlimited().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let support = dc.create_text_channel(guild, "support");
    let alice = dc.create_user(NewUser::named("alice"));
    ok(&dc, "PUT", &format!("/applications/{}/commands", dc.application_id()), Some(webcare_commands())).await;
    let message = panic_message(|| {
        dc.run_command(alice, support, SlashCommand::new("ticket"));
    });
    assert!(message.contains("needs option subject"), "{message}");
}

#[tokio::test]
async fn buttons_are_answered_by_update_defer_edit_and_follow_up() {
    let dc = unlimited().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let support = dc.create_text_channel(guild, "support");
    let alice = dc.create_user(NewUser::named("alice"));
    let app = dc.application_id();
    let m = ok(&dc, "POST", &format!("/channels/{support}/messages"), Some(json!({
        "content": "Storing in Utrecht",
        "components": [{"type": 1, "components": [{"type": 2, "style": 2, "label": "Iets anders?", "custom_id": "handoff"}]}],
    }))).await;
    let message = webcare_fake_discord::MessageId(m["id"].as_str().unwrap().parse().unwrap());
    // Update: the pressed message changes.
    let press = dc.press_button(alice, support, message, "handoff");
    ok(
        &dc,
        "POST",
        &format!("/interactions/{}/{}/callback", press.interaction_id, press.token),
        Some(json!({
            "type": 7, "data": {"content": "Een collega neemt contact op", "components": []}
        })),
    )
    .await;
    let updated = dc.bot_message(support, message).unwrap();
    assert_eq!(
        (updated.content.as_str(), updated.components.len(), updated.edits()),
        ("Een collega neemt contact op", 0, 1)
    );
    assert_eq!(dc.interaction(press.interaction_id).unwrap().original, Some(message));
    // Defer, then edit the original and follow up.
    let m2 = ok(&dc, "POST", &format!("/channels/{support}/messages"), Some(json!({
        "content": "Nog een", "components": [{"type": 1, "components": [{"type": 2, "style": 1, "label": "x", "custom_id": "again"}]}],
    }))).await;
    let press = dc.press_button(
        alice,
        support,
        webcare_fake_discord::MessageId(m2["id"].as_str().unwrap().parse().unwrap()),
        "again",
    );
    ok(
        &dc,
        "POST",
        &format!("/interactions/{}/{}/callback", press.interaction_id, press.token),
        Some(json!({"type": 5})),
    )
    .await;
    let original = format!("/webhooks/{app}/{}/messages/@original", press.token);
    let loading = ok(&dc, "GET", &original, None).await;
    assert_eq!(loading["flags"].as_u64().unwrap() & message_flags::LOADING, message_flags::LOADING);
    let edited =
        ok(&dc, "PATCH", &original, Some(json!({"content": "Ticket #12 geopend", "allowed_mentions": {"parse": []}})))
            .await;
    assert_eq!((edited["content"].clone(), edited["flags"].clone()), (json!("Ticket #12 geopend"), json!(0)));
    let follow = ok(
        &dc,
        "POST",
        &format!("/webhooks/{app}/{}", press.token),
        Some(json!({"content": "Meer info volgt", "flags": 64})),
    )
    .await;
    let rec = dc.interaction(press.interaction_id).unwrap();
    assert_eq!(rec.followups.len(), 1);
    assert_eq!(follow["flags"], 64);
    assert_eq!(follow["interaction_metadata"]["type"], 3);
    let path = format!("/webhooks/{app}/{}/messages/{}", press.token, follow["id"].as_str().unwrap());
    assert_eq!(call(&dc, "DELETE", &path, None).await.status, 204);
    assert_eq!(call(&dc, "GET", &path, None).await.body["code"], 10008);
    assert_eq!(
        call(&dc, "GET", &format!("/webhooks/{app}/unknown/messages/@original"), None).await.body["code"],
        10015
    );
    let answers = dc.bot_messages(support);
    assert!(
        answers.iter().any(|m| m.content == "Ticket #12 geopend" && m.interaction_id == Some(press.interaction_id))
    );
}

#[tokio::test]
async fn wait_until_returns_false_when_the_condition_never_holds() {
    let dc = unlimited().await;
    let started = tokio::time::Instant::now();
    assert!(!dc.wait_until(Duration::from_millis(50), || dc.stats().deliveries() > 0).await);
    assert!(started.elapsed() >= Duration::from_millis(50));
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let c = dc.create_text_channel(guild, "support");
    let waiter = dc.wait_until(WAIT, || dc.stats().deliveries() == 1);
    let (seen, _) = tokio::join!(waiter, async {
        tokio::task::yield_now().await;
        ok(&dc, "POST", &format!("/channels/{c}/messages"), Some(json!({"content": "x"}))).await
    });
    assert!(seen);
}
