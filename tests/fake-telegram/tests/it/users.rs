//! The user side: what users post (text with entities, photos, documents, stickers, edits, replies), privacy mode
//! in groups, a group upgraded to a supergroup, and a user who blocks the bot.

use serde_json::json;
use webcare_fake_telegram::{BotMembership, Config, FakeTelegram, NewUser, RateLimits, UserMessage};

use crate::common::{call, ok, unlimited};

#[tokio::test]
async fn commands_and_mentions_carry_utf16_entities() {
    let tg = unlimited().await;
    let alice = tg.create_user(NewUser::named("Alice").language("nl"));
    let chat = tg.private_chat(alice);
    tg.send_text(alice, chat, "/start ticket-42");
    tg.send_text(alice, chat, &format!("👋🏽 hoi @{} /status@{}", tg.bot_username(), tg.bot_username()));
    let updates = ok(&tg, "getUpdates", json!({})).await;
    let first = &updates[0]["message"];
    assert_eq!(first["text"], "/start ticket-42");
    assert_eq!(first["entities"], json!([{"type": "bot_command", "offset": 0, "length": 6}]));
    assert_eq!(first["from"]["language_code"], "nl");
    assert_eq!(first["chat"]["type"], "private");
    // "👋🏽" is two characters of two UTF-16 units each.
    let name_len = tg.bot_username().len() as i64;
    assert_eq!(
        updates[1]["message"]["entities"],
        json!([
            {"type": "mention", "offset": 9, "length": name_len + 1},
            {"type": "bot_command", "offset": 10 + name_len + 1, "length": 8 + name_len},
        ])
    );
}

#[tokio::test]
async fn photos_documents_stickers_edits_and_replies() {
    let tg = unlimited().await;
    let alice = tg.create_user(NewUser::named("Alice"));
    let chat = tg.private_chat(alice);
    tg.send(alice, chat, UserMessage::photo(Some("meterkast")));
    tg.send(alice, chat, UserMessage::sticker("👍"));
    let text = tg.send_text(alice, chat, "my adress is Street 1");
    tg.edit_text(alice, chat, text.message_id, "my address is Street 1");
    let bot = ok(&tg, "sendMessage", json!({"chat_id": chat.0, "text": "Which street?"})).await;
    tg.send(alice, chat, UserMessage::text("Street 1").reply_to(bot["message_id"].as_i64().unwrap()));

    let updates = ok(&tg, "getUpdates", json!({})).await;
    let updates = updates.as_array().unwrap();
    assert_eq!(updates.len(), 5);
    let photo = &updates[0]["message"];
    assert_eq!(photo["caption"], "meterkast");
    assert_eq!(photo["photo"].as_array().unwrap().len(), 2);
    let file = ok(&tg, "getFile", json!({"file_id": photo["photo"][1]["file_id"]})).await;
    assert!(file["file_path"].as_str().unwrap().starts_with("photos/"));
    let sticker = &updates[1]["message"]["sticker"];
    assert_eq!(
        (sticker["emoji"].as_str(), sticker["type"].as_str(), sticker["is_animated"].as_bool()),
        (Some("👍"), Some("regular"), Some(false))
    );
    let edited = &updates[3]["edited_message"];
    assert_eq!(edited["message_id"], text.message_id);
    assert_eq!(edited["text"], "my address is Street 1");
    assert!(edited["edit_date"].as_i64().is_some());
    let reply = &updates[4]["message"];
    assert_eq!(reply["reply_to_message"]["message_id"], bot["message_id"]);
    assert_eq!(reply["reply_to_message"]["from"]["is_bot"], true);
}

#[tokio::test]
async fn privacy_mode_hides_group_chatter_but_not_commands_mentions_and_replies() {
    let tg = unlimited().await;
    let alice = tg.create_user(NewUser::named("Alice"));
    let group = tg.create_group("Klanten", BotMembership::Member);
    let bot = tg.bot_username();
    assert_eq!(tg.send_text(alice, group, "chatter among people").update_id, None);
    assert!(tg.send_text(alice, group, "/status").update_id.is_some());
    assert!(tg.send_text(alice, group, &format!("/status@{bot}")).update_id.is_some());
    assert_eq!(tg.send_text(alice, group, "/status@other_bot").update_id, None);
    assert!(tg.send_text(alice, group, &format!("hey @{bot} help")).update_id.is_some());
    let answer = ok(&tg, "sendMessage", json!({"chat_id": group.0, "text": "hi"})).await;
    let reply = UserMessage::text("thanks").reply_to(answer["message_id"].as_i64().unwrap());
    assert!(tg.send(alice, group, reply).update_id.is_some());

    tg.set_bot_membership(group, BotMembership::Administrator { can_delete_messages: false });
    assert!(tg.send_text(alice, group, "admins see everything").update_id.is_some());
    tg.set_bot_membership(group, BotMembership::Left);
    assert_eq!(tg.send_text(alice, group, "/status").update_id, None);
    let (status, answer) = call(&tg, "sendMessage", json!({"chat_id": group.0, "text": "hi"})).await;
    assert_eq!(
        (status, answer["description"].as_str()),
        (403, Some("Forbidden: bot is not a member of the group chat"))
    );

    let open = FakeTelegram::start_with(Config {
        can_read_all_group_messages: true,
        rate_limits: RateLimits::off(),
        ..Config::default()
    })
    .await;
    let bob = open.create_user(NewUser::named("Bob"));
    let group = open.create_supergroup("Open", BotMembership::Member);
    assert!(open.send_text(bob, group, "chatter among people").update_id.is_some());
    assert_eq!(ok(&open, "getMe", json!({})).await["can_read_all_group_messages"], true);
}

#[tokio::test]
async fn a_group_upgraded_to_a_supergroup_answers_sends_to_the_old_id_with_migrate_to_chat_id() {
    let tg = unlimited().await;
    let alice = tg.create_user(NewUser::named("Alice"));
    let group = tg.create_group("Klanten", BotMembership::Member);
    let supergroup = tg.migrate_to_supergroup(group, alice);
    assert!(supergroup.0 < -1_000_000_000_000);

    let (status, answer) = call(&tg, "sendMessage", json!({"chat_id": group.0, "text": "hi"})).await;
    assert_eq!(status, 400);
    assert_eq!(
        answer,
        json!({"ok": false, "error_code": 400, "description": "Bad Request: group chat was upgraded to a supergroup chat",
               "parameters": {"migrate_to_chat_id": supergroup.0}})
    );
    let sent = ok(&tg, "sendMessage", json!({"chat_id": supergroup.0, "text": "hi"})).await;
    assert_eq!(sent["chat"]["type"], "supergroup");

    // The bot hears of the upgrade through two service messages.
    let updates = ok(&tg, "getUpdates", json!({})).await;
    assert_eq!(updates[0]["message"]["migrate_to_chat_id"], supergroup.0);
    assert_eq!(updates[0]["message"]["chat"]["id"], group.0);
    assert_eq!(updates[1]["message"]["migrate_from_chat_id"], group.0);
    assert_eq!(updates[1]["message"]["chat"]["id"], supergroup.0);
}

#[tokio::test]
async fn a_user_who_blocks_the_bot_gets_no_messages_until_unblocking() {
    let tg = unlimited().await;
    let alice = tg.create_user(NewUser::named("Alice"));
    let chat = tg.private_chat(alice);
    tg.block_bot(alice);
    let (status, answer) = call(&tg, "sendMessage", json!({"chat_id": chat.0, "text": "update on your ticket"})).await;
    assert_eq!(status, 403);
    assert_eq!(
        answer,
        json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"})
    );
    assert_eq!(tg.stats().sends, 0);

    tg.unblock_bot(alice);
    ok(&tg, "sendMessage", json!({"chat_id": chat.0, "text": "welcome back"})).await;
    let updates = ok(&tg, "getUpdates", json!({})).await;
    let blocked = &updates[0]["my_chat_member"];
    assert_eq!(
        (blocked["old_chat_member"]["status"].as_str(), blocked["new_chat_member"]["status"].as_str()),
        (Some("member"), Some("kicked"))
    );
    assert_eq!(blocked["new_chat_member"]["user"]["id"], tg.bot_id());
    assert_eq!(updates[1]["my_chat_member"]["new_chat_member"]["status"], "member");
}
