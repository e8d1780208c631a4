//! REST shapes and Discord's errors: authentication, the gateway routes, creating, editing, deleting and
//! crossposting messages, `allowed_mentions`, DMs (open and closed), private threads, application commands and
//! interaction callbacks.

use std::time::Duration;

use serde_json::json;
use webcare_fake_discord::{
    BotEvent, Config, FakeDiscord, NewGuild, NewUser, RateLimits, SlashCommand, permissions, routes,
};

use crate::common::{WAIT, call, call_with, ok, send, unlimited, webcare_commands};

#[tokio::test]
async fn requests_without_the_bot_token_answer_401() {
    let dc = unlimited().await;
    for auth in [None, Some("Bot wrong"), Some(dc.token().as_str())] {
        let a = call_with(&dc, "GET", "/users/@me", None, auth).await;
        assert_eq!(a.status, 401, "{auth:?}");
        assert_eq!(a.body, json!({"message": "401: Unauthorized", "code": 0}));
    }
    // GET /gateway needs no authentication, as on Discord.
    let a = call_with(&dc, "GET", "/gateway", None, None).await;
    assert_eq!(a.body, json!({"url": dc.gateway_url()}));
    assert_eq!(dc.stats().invalid_requests, 3);
}

#[tokio::test]
async fn gateway_bot_current_user_and_unknown_routes() {
    let dc = unlimited().await;
    let g = ok(&dc, "GET", "/gateway/bot", None).await;
    assert_eq!(g["url"], dc.gateway_url());
    assert_eq!(g["shards"], 1);
    assert_eq!(g["session_start_limit"]["total"], 1000);
    assert_eq!(g["session_start_limit"]["remaining"], 1000);
    assert_eq!(g["session_start_limit"]["max_concurrency"], 1);
    let me = ok(&dc, "GET", "/users/@me", None).await;
    assert_eq!(me["id"], dc.bot_user_id().to_string());
    assert_eq!((me["bot"].clone(), me["discriminator"].clone()), (json!(true), json!("0")));
    let a = call(&dc, "GET", "/nothing/here", None).await;
    assert_eq!((a.status, a.body), (404, json!({"message": "404: Not Found", "code": 0})));
    let a = call(&dc, "PUT", "/users/@me", None).await;
    assert_eq!((a.status, a.body), (405, json!({"message": "405: Method Not Allowed", "code": 0})));
    let a = call(&dc, "GET", "/users/42", None).await;
    assert_eq!((a.status, a.body["code"].clone()), (404, json!(10013)));
}

#[tokio::test]
async fn a_message_is_created_with_its_components_and_allowed_mentions_recorded_as_sent() {
    let dc = unlimited().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let support = dc.create_text_channel(guild, "support");
    let alice = dc.create_user(NewUser::named("alice"));
    let asked = dc.post_text(alice, support, "storing?");
    let allowed = json!({"parse": [], "replied_user": false});
    let m = ok(&dc, "POST", &format!("/channels/{support}/messages"), Some(json!({
        "content": format!("@everyone <@{alice}> er is een storing"),
        "allowed_mentions": allowed,
        "message_reference": {"message_id": asked.message_id.to_string(), "fail_if_not_exists": false},
        "components": [{"type": 1, "components": [{"type": 2, "style": 1, "label": "Mens", "custom_id": "handoff"}]}],
    })))
    .await;
    assert_eq!(m["channel_id"], support.to_string());
    assert_eq!(m["author"]["id"], dc.bot_user_id().to_string());
    assert_eq!(m["type"], 19, "a reply");
    assert_eq!(m["message_reference"]["message_id"], asked.message_id.to_string());
    assert_eq!(m["referenced_message"]["content"], "storing?");
    assert_eq!((m["mention_everyone"].clone(), m["mentions"].clone()), (json!(false), json!([])));
    assert_eq!(m["components"][0]["components"][0]["custom_id"], "handoff");
    let sent = dc.visible_bot_messages(support);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].allowed_mentions, Some(allowed));
    assert!(sent[0].pings.none());
    assert_eq!(sent[0].custom_ids(), ["handoff"]);
    assert_eq!(dc.stats().deliveries_per_channel[&support.0], 1);

    // Without allowed_mentions Discord's default parses everything: the user and @everyone are pinged (the bot
    // has Mention Everyone through the @everyone role). Taking the permission away stops the @everyone ping.
    ok(
        &dc,
        "POST",
        &format!("/channels/{support}/messages"),
        Some(json!({"content": format!("@everyone <@{alice}>")})),
    )
    .await;
    let pinged = dc.visible_bot_messages(support).pop().unwrap();
    assert_eq!((pinged.pings.everyone, pinged.pings.users.clone()), (true, vec![alice]));
    assert_eq!(pinged.json["mention_everyone"], true);
    assert_eq!(pinged.allowed_mentions, None);
    let guild2 = dc.create_guild(NewGuild {
        everyone_permissions: permissions::VIEW_CHANNEL | permissions::SEND_MESSAGES,
        ..NewGuild::named("Strict")
    });
    let strict = dc.create_text_channel(guild2, "support");
    ok(&dc, "POST", &format!("/channels/{strict}/messages"), Some(json!({"content": "@here"}))).await;
    assert!(!dc.visible_bot_messages(strict)[0].pings.everyone);
}

#[tokio::test]
async fn invalid_messages_get_discords_errors() {
    let dc = unlimited().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let support = dc.create_text_channel(guild, "support");
    let a = send(&dc, support, json!({"content": "x".repeat(2001)})).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["code"], 50035);
    assert_eq!(a.body["message"], "Invalid Form Body");
    assert_eq!(a.body["errors"]["content"]["_errors"][0]["code"], "BASE_TYPE_MAX_LENGTH");
    assert_eq!(send(&dc, support, json!({"content": "x".repeat(2000)})).await.status, 200);
    let a = send(&dc, support, json!({"content": ""})).await;
    assert_eq!((a.status, a.body), (400, json!({"message": "Cannot send an empty message", "code": 50006})));
    let a = send(&dc, 1, json!({"content": "hoi"})).await;
    assert_eq!((a.status, a.body), (404, json!({"message": "Unknown Channel", "code": 10003})));
    let a = send(&dc, support, json!({"content": "hoi", "message_reference": {"message_id": "1"}})).await;
    assert_eq!(a.body["errors"]["message_reference"]["_errors"][0]["code"], "MESSAGE_REFERENCE_UNKNOWN_MESSAGE");
    let a =
        send(&dc, support, json!({"content": "hoi", "allowed_mentions": {"parse": ["users"], "users": ["1"]}})).await;
    assert_eq!(a.body["code"], 50035);
    let a = call(&dc, "POST", &format!("/channels/{support}/messages"), None).await;
    assert_eq!(a.body["code"], 50006);
    assert_eq!(dc.visible_bot_messages(support).len(), 1);
}

#[tokio::test]
async fn edits_are_kept_with_their_history() {
    let dc = unlimited().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let support = dc.create_text_channel(guild, "support");
    let m = ok(&dc, "POST", &format!("/channels/{support}/messages"), Some(json!({"content": "v1"}))).await;
    let id = m["id"].as_str().unwrap();
    let e = ok(
        &dc,
        "PATCH",
        &format!("/channels/{support}/messages/{id}"),
        Some(json!({"content": "v2", "allowed_mentions": {"parse": []}})),
    )
    .await;
    assert_eq!(e["content"], "v2");
    assert!(e["edited_timestamp"].is_string());
    let msg = dc.visible_bot_messages(support).pop().unwrap();
    assert_eq!((msg.content.as_str(), msg.previous_contents.clone()), ("v2", vec!["v1".to_string()]));
    assert_eq!(msg.allowed_mentions, Some(json!({"parse": []})));
    let alice = dc.create_user(NewUser::named("alice"));
    let theirs = dc.post_text(alice, support, "mine");
    let a = call(
        &dc,
        "PATCH",
        &format!("/channels/{support}/messages/{}", theirs.message_id),
        Some(json!({"content": "x"})),
    )
    .await;
    assert_eq!((a.status, a.body["code"].clone()), (403, json!(50005)));
}

#[tokio::test]
async fn deleting_a_users_message_needs_manage_messages() {
    let dc = unlimited().await;
    let without = dc.create_guild(NewGuild::named("Zonder"));
    let with = dc.create_guild(NewGuild::named("Met").bot_can_manage_messages());
    let (c1, c2) = (dc.create_text_channel(without, "support"), dc.create_text_channel(with, "support"));
    let alice = dc.create_user(NewUser::named("alice"));
    let p1 = dc.post_text(alice, c1, "mijn IBAN is NL91ABNA0417164300");
    let a = call(&dc, "DELETE", &format!("/channels/{c1}/messages/{}", p1.message_id), None).await;
    assert_eq!((a.status, a.body), (403, json!({"message": "Missing Permissions", "code": 50013})));
    assert!(!dc.is_deleted(c1, p1.message_id));
    let p2 = dc.post_text(alice, c2, "mijn IBAN is NL91ABNA0417164300");
    let a = call(&dc, "DELETE", &format!("/channels/{c2}/messages/{}", p2.message_id), None).await;
    assert_eq!((a.status, a.body), (204, serde_json::Value::Null));
    assert!(dc.is_deleted(c2, p2.message_id));
    let again = call(&dc, "DELETE", &format!("/channels/{c2}/messages/{}", p2.message_id), None).await;
    assert_eq!(again.body["code"], 10008);
    // The bot may always delete its own messages.
    let own = ok(&dc, "POST", &format!("/channels/{c1}/messages"), Some(json!({"content": "x"}))).await;
    ok(&dc, "DELETE", &format!("/channels/{c1}/messages/{}", own["id"].as_str().unwrap()), None).await;
    assert_eq!(dc.visible_bot_messages(c1).len(), 0);
    assert_eq!(dc.bot_messages(c1).len(), 1);
    // Permissions can change while running.
    dc.set_bot_permissions(without, permissions::BOT_DEFAULT | permissions::MANAGE_MESSAGES);
    ok(&dc, "DELETE", &format!("/channels/{c1}/messages/{}", p1.message_id), None).await;
    assert_eq!(dc.stats().deletions, 3);
}

#[tokio::test]
async fn crossposting_works_only_in_announcement_channels_and_once() {
    let dc = unlimited().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let news = dc.create_announcement_channel(guild, "storingen");
    let text = dc.create_text_channel(guild, "support");
    let n = ok(&dc, "POST", &format!("/channels/{news}/messages"), Some(json!({"content": "Storing Utrecht"}))).await;
    let t = ok(&dc, "POST", &format!("/channels/{text}/messages"), Some(json!({"content": "Storing Utrecht"}))).await;
    let a =
        call(&dc, "POST", &format!("/channels/{text}/messages/{}/crosspost", t["id"].as_str().unwrap()), None).await;
    assert_eq!((a.status, a.body["code"].clone()), (403, json!(50024)));
    let c = ok(&dc, "POST", &format!("/channels/{news}/messages/{}/crosspost", n["id"].as_str().unwrap()), None).await;
    assert_eq!(c["flags"], 1);
    let a =
        call(&dc, "POST", &format!("/channels/{news}/messages/{}/crosspost", n["id"].as_str().unwrap()), None).await;
    assert_eq!((a.status, a.body["code"].clone()), (400, json!(40033)));
    assert!(dc.visible_bot_messages(news)[0].crossposted);
    assert_eq!(dc.stats().crossposts, 1);
}

#[tokio::test]
async fn closed_dms_answer_50007_and_a_private_thread_is_the_way_out() {
    let dc = unlimited().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let support = dc.create_text_channel(guild, "support");
    let open = dc.create_user(NewUser::named("open"));
    let closed = dc.create_user(NewUser::named("closed").dms_closed());
    let other_bot = dc.create_user(NewUser::bot("otherbot"));
    let dm = ok(&dc, "POST", "/users/@me/channels", Some(json!({"recipient_id": open.to_string()}))).await;
    assert_eq!(dm["type"], 1);
    assert_eq!(dm["recipients"][0]["id"], open.to_string());
    ok(&dc, "POST", &format!("/channels/{}/messages", dm["id"].as_str().unwrap()), Some(json!({"content": "hoi"})))
        .await;
    for user in [closed, other_bot] {
        // Opening the DM works; sending into it does not.
        let dm = ok(&dc, "POST", "/users/@me/channels", Some(json!({"recipient_id": user.to_string()}))).await;
        let a = send(&dc, dm["id"].as_str().unwrap(), json!({"content": "hoi"})).await;
        assert_eq!((a.status, a.body), (403, json!({"message": "Cannot send messages to this user", "code": 50007})));
    }
    dc.post_text(closed, support, "help");
    let t = call(
        &dc,
        "POST",
        &format!("/channels/{support}/threads"),
        Some(json!({"name": "case-1", "type": 12, "invitable": false})),
    )
    .await;
    assert_eq!(t.status, 201, "{}", t.body);
    assert_eq!((t.body["type"].clone(), t.body["parent_id"].clone()), (json!(12), json!(support.to_string())));
    assert_eq!(t.body["thread_metadata"]["invitable"], false);
    let thread = t.body["id"].as_str().unwrap().to_string();
    let a = call(&dc, "PUT", &format!("/channels/{thread}/thread-members/{closed}"), None).await;
    assert_eq!(a.status, 204);
    ok(&dc, "POST", &format!("/channels/{thread}/messages"), Some(json!({"content": "Hier verder, privé"}))).await;
    let threads = dc.threads_of(support);
    assert_eq!(threads.len(), 1);
    assert!(dc.thread_members(threads[0]).contains(&closed));
    assert_eq!(dc.visible_bot_messages(threads[0]).len(), 1);
    // Once the user opens their DMs, sends go through.
    dc.set_dms_open(closed, true);
    let dm = dc.existing_dm_channel(closed).unwrap();
    assert_eq!(send(&dc, dm, json!({"content": "hoi"})).await.status, 200);
    assert!(dc.events().contains(&BotEvent::DmOpened { user_id: closed, channel_id: dm }));
}

#[tokio::test]
async fn commands_are_registered_globally_and_per_guild() {
    let dc = unlimited().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let app = dc.application_id();
    let list = ok(&dc, "PUT", &format!("/applications/{app}/commands"), Some(webcare_commands())).await;
    assert_eq!(list.as_array().unwrap().len(), 3);
    let ids: Vec<_> = list.as_array().unwrap().iter().map(|c| c["id"].clone()).collect();
    // Overwriting again keeps the ids of commands with the same name.
    let again = ok(&dc, "PUT", &format!("/applications/{app}/commands"), Some(webcare_commands())).await;
    assert_eq!(again.as_array().unwrap().iter().map(|c| c["id"].clone()).collect::<Vec<_>>(), ids);
    let a = call(
        &dc,
        "POST",
        &format!("/applications/{app}/guilds/{guild}/commands"),
        Some(json!({"name": "only-here", "description": "x"})),
    )
    .await;
    assert_eq!(a.status, 201);
    assert_eq!(a.body["guild_id"], guild.to_string());
    let a = call(
        &dc,
        "POST",
        &format!("/applications/{app}/guilds/{guild}/commands"),
        Some(json!({"name": "only-here", "description": "y"})),
    )
    .await;
    assert_eq!(a.status, 200, "an existing name is updated");
    assert_eq!(dc.commands(Some(guild)).len(), 1);
    let a = call(
        &dc,
        "POST",
        &format!("/applications/{app}/commands"),
        Some(json!({"name": "Status", "description": "x"})),
    )
    .await;
    assert_eq!(a.body["errors"]["name"]["_errors"][0]["code"], "APPLICATION_COMMAND_INVALID_NAME");
    let a = call(&dc, "POST", "/applications/1/commands", Some(json!({"name": "x", "description": "x"}))).await;
    assert_eq!(a.status, 403);
    let id = ids[1].as_str().unwrap();
    assert_eq!(call(&dc, "DELETE", &format!("/applications/{app}/commands/{id}"), None).await.status, 204);
    assert_eq!(dc.commands(None).len(), 2);
}

#[tokio::test]
async fn interaction_callbacks_answer_204_once_and_only_in_time() {
    let config = Config {
        interaction_deadline: Duration::from_millis(200),
        rate_limits: RateLimits::off(),
        ..Config::default()
    };
    let dc = FakeDiscord::start_with(config).await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let support = dc.create_text_channel(guild, "support");
    let alice = dc.create_user(NewUser::named("alice"));
    ok(&dc, "PUT", &format!("/applications/{}/commands", dc.application_id()), Some(webcare_commands())).await;
    let run = dc.run_command(alice, support, SlashCommand::new("status"));
    let path = format!("/interactions/{}/{}/callback", run.interaction_id, run.token);
    let body = json!({"type": 4, "data": {"content": "Geen storingen", "flags": 64}});
    let a = call_with(&dc, "POST", &path, Some(body.clone()), None).await;
    assert_eq!((a.status, a.body), (204, serde_json::Value::Null));
    let a = call(&dc, "POST", &path, Some(body.clone())).await;
    assert_eq!((a.status, a.body["code"].clone()), (400, json!(40060)));
    let rec = dc.interaction(run.interaction_id).unwrap();
    assert_eq!((rec.response_type(), rec.refused_callbacks.clone()), (Some(4), vec![(400, 40060)]));
    // The ephemeral answer is the interaction's, not visible in the channel.
    let original = dc.bot_message(support, rec.original.unwrap()).unwrap();
    assert_eq!((original.content.as_str(), original.interaction_id), ("Geen storingen", Some(run.interaction_id)));
    assert!(dc.visible_bot_messages(support).is_empty());
    let bad =
        call(&dc, "POST", &format!("/interactions/{}/wrong/callback", run.interaction_id), Some(body.clone())).await;
    assert_eq!(bad.body["code"], 10062);

    let late = dc.run_command(alice, support, SlashCommand::new("stop"));
    // Time passing, not synchronisation: the deadline is what is under test.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let a =
        call(&dc, "POST", &format!("/interactions/{}/{}/callback", late.interaction_id, late.token), Some(body)).await;
    assert_eq!((a.status, a.body), (404, json!({"message": "Unknown interaction", "code": 10062})));
    assert!(dc.wait_until(WAIT, || dc.stats().interaction_callbacks == 1).await);
    assert_eq!(dc.stats().requests_to(routes::INTERACTION_CALLBACK), 4);
}

#[tokio::test]
async fn a_repeated_nonce_with_enforce_nonce_creates_one_message() {
    let dc = unlimited().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let support = dc.create_text_channel(guild, "support");
    let body = json!({"content": "Storing", "nonce": "outbox-17", "enforce_nonce": true});
    let a = ok(&dc, "POST", &format!("/channels/{support}/messages"), Some(body.clone())).await;
    let b = ok(&dc, "POST", &format!("/channels/{support}/messages"), Some(body)).await;
    assert_eq!(a["id"], b["id"]);
    assert_eq!(dc.bot_messages(support).len(), 1);
    assert!(dc.duplicate_contents().is_empty());
    ok(&dc, "POST", &format!("/channels/{support}/messages"), Some(json!({"content": "Storing"}))).await;
    assert_eq!(dc.duplicate_contents(), vec![(support, "Storing".to_string(), 2)]);
}
