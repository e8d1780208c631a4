//! Each method's happy path and its documented errors, method names in any case, and the JSON, form and
//! multipart encodings of a call.

use serde_json::{Value, json};
use webcare_fake_telegram::{BotEvent, BotMembership, FakeTelegram, MAX_TEXT_CHARS, NewUser, UserMessage};

use crate::common::{call, client, ok, unlimited};

#[tokio::test]
async fn get_me_in_any_case_and_any_http_method() {
    let tg = FakeTelegram::start().await;
    let me = ok(&tg, "getMe", json!({})).await;
    assert_eq!(me["is_bot"], true);
    assert_eq!(me["id"], tg.bot_id());
    assert_eq!(me["username"], tg.bot_username());
    assert_eq!(me["can_read_all_group_messages"], false);
    let upper: Value = client().get(tg.method_url("GETME")).send().await.unwrap().json().await.unwrap();
    assert_eq!(upper["result"], me);
    assert_eq!(ok(&tg, "getme", json!({})).await, me);
    assert_eq!(tg.stats().calls["getMe"], 3);
}

#[tokio::test]
async fn unknown_token_is_401_and_unknown_method_404() {
    let tg = FakeTelegram::start().await;
    let wrong = format!("{}/bot123:wrong/getMe", tg.url());
    let resp = client().post(wrong).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
    );
    let (status, answer) = call(&tg, "sendTelepathy", json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(answer, json!({"ok": false, "error_code": 404, "description": "Not Found"}));
}

#[tokio::test]
async fn send_message_with_html_keyboard_reply_and_preview_options() {
    let tg = unlimited().await;
    let alice = tg.create_user(NewUser::named("Alice").username("alice"));
    let chat = tg.private_chat(alice);
    let question = tg.send_text(alice, chat, "Is er een storing?");
    let sent = ok(
        &tg,
        "SendMessage",
        json!({
            "chat_id": chat.0,
            "text": "<b>Ja</b>, er is een storing &amp; we werken eraan 🙂 <a href=\"https://status.example/1\">status</a>",
            "parse_mode": "HTML",
            "reply_parameters": {"message_id": question.message_id},
            "link_preview_options": {"is_disabled": true},
            "reply_markup": {"inline_keyboard": [[{"text": "Something else? Talk to a person", "callback_data": "ticket:open"}]]},
        }),
    )
    .await;
    assert_eq!(sent["text"], "Ja, er is een storing & we werken eraan 🙂 status");
    assert_eq!(sent["from"]["id"], tg.bot_id());
    assert_eq!(sent["chat"]["id"], chat.0);
    assert_eq!(sent["reply_to_message"]["message_id"], question.message_id);
    // "🙂" counts two UTF-16 units: the link starts at UTF-16 offset 43, char offset 42.
    assert_eq!(
        sent["entities"],
        json!([{"type": "bold", "offset": 0, "length": 2}, {"type": "text_link", "url": "https://status.example/1", "offset": 43, "length": 6}])
    );
    let read = tg.bot_messages(chat);
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].message_id, sent["message_id"].as_i64().unwrap());
    assert_eq!(read[0].parse_mode.as_deref(), Some("HTML"));
    assert!(read[0].raw_text.starts_with("<b>Ja</b>"));
    assert_eq!(read[0].callback_data(), vec!["ticket:open"]);
    assert_eq!(read[0].reply_to_message_id, Some(question.message_id));
    assert_eq!(read[0].link_preview_options, Some(json!({"is_disabled": true})));
    assert_eq!(tg.events(), vec![BotEvent::Sent { chat_id: chat, message_id: read[0].message_id }]);
}

#[tokio::test]
async fn send_message_by_form_and_multipart() {
    let tg = unlimited().await;
    let alice = tg.create_user(NewUser::named("Alice"));
    let chat = tg.private_chat(alice);
    let markup = r#"{"inline_keyboard":[[{"text":"Open","url":"https://example.org/"}]]}"#;
    let form: Value = client()
        .post(tg.method_url("sendMessage"))
        .form(&[("chat_id", chat.0.to_string().as_str()), ("text", "by form"), ("reply_markup", markup)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(form["result"]["text"], "by form");
    assert_eq!(form["result"]["reply_markup"]["inline_keyboard"][0][0]["url"], "https://example.org/");

    let parts = reqwest::multipart::Form::new()
        .text("chat_id", chat.0.to_string())
        .text("text", "<i>by multipart</i>")
        .text("parse_mode", "HTML");
    let multipart: Value =
        client().post(tg.method_url("sendMessage")).multipart(parts).send().await.unwrap().json().await.unwrap();
    assert_eq!(multipart["ok"], true, "{multipart}");
    assert_eq!(multipart["result"]["text"], "by multipart");
    assert_eq!(multipart["result"]["entities"][0]["type"], "italic");
    assert_eq!(tg.bot_messages(chat).len(), 2);
}

async fn bad(tg: &FakeTelegram, method: &str, body: Value) -> (u16, String) {
    let (status, answer) = call(tg, method, body).await;
    assert_eq!(answer["ok"], false);
    assert_eq!(answer["error_code"], status);
    (status, answer["description"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn send_message_errors_use_telegram_descriptions() {
    let tg = unlimited().await;
    let alice = tg.create_user(NewUser::named("Alice"));
    let chat = tg.private_chat(alice);
    let c = chat.0;
    let cases = [
        (json!({"chat_id": c}), "Bad Request: message text is empty"),
        (json!({"chat_id": c, "text": "   "}), "Bad Request: message text is empty"),
        (json!({"chat_id": c, "text": "<b></b>", "parse_mode": "HTML"}), "Bad Request: message text is empty"),
        (json!({"chat_id": c, "text": "x".repeat(MAX_TEXT_CHARS + 1)}), "Bad Request: message is too long"),
        (json!({"text": "hi"}), "Bad Request: chat_id is empty"),
        (json!({"chat_id": 42, "text": "hi"}), "Bad Request: chat not found"),
        (
            json!({"chat_id": c, "text": "<b>open", "parse_mode": "HTML"}),
            "Bad Request: can't parse entities: Can't find end tag corresponding to start tag \"b\"",
        ),
        (
            json!({"chat_id": c, "text": "<marquee>x</marquee>", "parse_mode": "HTML"}),
            "Bad Request: can't parse entities: Unsupported start tag \"marquee\" at byte offset 0",
        ),
        (
            json!({"chat_id": c, "text": "1 < 2", "parse_mode": "HTML"}),
            "Bad Request: can't parse entities: Unsupported start tag \"\" at byte offset 2",
        ),
        (json!({"chat_id": c, "text": "hi", "parse_mode": "BBCode"}), "Bad Request: unsupported parse_mode"),
        (
            json!({"chat_id": c, "text": "hi", "reply_markup": {"inline_keyboard": [[{"text": "x", "callback_data": "d".repeat(65)}]]}}),
            "Bad Request: BUTTON_DATA_INVALID",
        ),
        (
            json!({"chat_id": c, "text": "hi", "reply_markup": "{not json"}),
            "Bad Request: can't parse reply keyboard markup JSON object",
        ),
        (
            json!({"chat_id": c, "text": "hi", "reply_markup": {"inline_keyboard": [[{"text": "x"}]]}}),
            "Bad Request: can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard",
        ),
        (
            json!({"chat_id": c, "text": "hi", "reply_parameters": {"message_id": 999}}),
            "Bad Request: message to be replied not found",
        ),
    ];
    for (body, description) in cases {
        assert_eq!(bad(&tg, "sendMessage", body.clone()).await, (400, description.to_string()), "{body}");
    }
    // Exactly 4096 characters (after entity parsing) is allowed; a missing reply target may be tolerated.
    let long = format!("<b>{}</b>", "é".repeat(MAX_TEXT_CHARS));
    ok(&tg, "sendMessage", json!({"chat_id": c, "text": long, "parse_mode": "HTML"})).await;
    ok(
        &tg,
        "sendMessage",
        json!({"chat_id": c, "text": "hi", "reply_parameters": {"message_id": 999, "allow_sending_without_reply": true}}),
    )
    .await;
    assert_eq!(tg.stats().sends, 2);
    let stranger = tg.create_user(NewUser::named("Stranger"));
    assert_eq!(
        bad(&tg, "sendMessage", json!({"chat_id": stranger.0, "text": "hi"})).await,
        (403, "Forbidden: bot can't initiate conversation with a user".to_string())
    );
}

#[tokio::test]
async fn edit_message_text_replaces_text_and_keyboard() {
    let tg = unlimited().await;
    let alice = tg.create_user(NewUser::named("Alice"));
    let chat = tg.private_chat(alice);
    let keyboard = json!({"inline_keyboard": [[{"text": "A", "callback_data": "a"}]]});
    let sent = ok(&tg, "sendMessage", json!({"chat_id": chat.0, "text": "v1", "reply_markup": keyboard})).await;
    let id = sent["message_id"].as_i64().unwrap();

    let edited = ok(&tg, "editMessageText", json!({"chat_id": chat.0, "message_id": id, "text": "<b>v2</b>", "parse_mode": "HTML", "reply_markup": keyboard})).await;
    assert_eq!(edited["text"], "v2");
    assert!(edited["edit_date"].as_i64().unwrap() > 0);
    assert_eq!(edited["reply_markup"], keyboard);

    let (status, description) =
        bad(&tg, "editMessageText", json!({"chat_id": chat.0, "message_id": id, "text": "<b>v2</b>", "parse_mode": "HTML", "reply_markup": keyboard})).await;
    assert_eq!(status, 400);
    assert!(description.starts_with("Bad Request: message is not modified"), "{description}");

    // Without reply_markup the keyboard goes away.
    let plain = ok(&tg, "editMessageText", json!({"chat_id": chat.0, "message_id": id, "text": "v3"})).await;
    assert!(plain.get("reply_markup").is_none());
    let read = &tg.bot_messages(chat)[0];
    assert_eq!((read.text.as_str(), read.edits, read.reply_markup.clone()), ("v3", 2, None));

    let users = tg.send_text(alice, chat, "mine");
    assert_eq!(
        bad(&tg, "editMessageText", json!({"chat_id": chat.0, "message_id": users.message_id, "text": "x"})).await,
        (400, "Bad Request: message can't be edited".to_string())
    );
    assert_eq!(
        bad(&tg, "editMessageText", json!({"chat_id": chat.0, "message_id": 999, "text": "x"})).await,
        (400, "Bad Request: message to edit not found".to_string())
    );
}

#[tokio::test]
async fn delete_message_needs_the_right_to_delete_in_groups() {
    let tg = unlimited().await;
    let alice = tg.create_user(NewUser::named("Alice"));
    let group = tg.create_supergroup("Klanten", BotMembership::Member);
    let iban = tg.send_text(alice, group, "/help mijn IBAN is NL91ABNA0417164300");
    let own =
        ok(&tg, "sendMessage", json!({"chat_id": group.0, "text": "answer"})).await["message_id"].as_i64().unwrap();

    assert_eq!(
        bad(&tg, "deleteMessage", json!({"chat_id": group.0, "message_id": iban.message_id})).await,
        (400, "Bad Request: message can't be deleted".to_string())
    );
    assert_eq!(ok(&tg, "deleteMessage", json!({"chat_id": group.0, "message_id": own})).await, json!(true));
    assert!(tg.is_deleted(group, own));
    assert_eq!(
        bad(&tg, "deleteMessage", json!({"chat_id": group.0, "message_id": own})).await,
        (400, "Bad Request: message to delete not found".to_string())
    );

    tg.set_bot_membership(group, BotMembership::Administrator { can_delete_messages: true });
    assert_eq!(ok(&tg, "deleteMessage", json!({"chat_id": group.0, "message_id": iban.message_id})).await, json!(true));
    assert!(tg.is_deleted(group, iban.message_id));
    assert_eq!(tg.stats().deletions, 2);
    assert!(tg.visible_bot_messages(group).is_empty());
}

#[tokio::test]
async fn a_button_press_arrives_as_callback_query_and_is_answered_once() {
    let tg = unlimited().await;
    let alice = tg.create_user(NewUser::named("Alice"));
    let chat = tg.private_chat(alice);
    let sent = ok(
        &tg,
        "sendMessage",
        json!({"chat_id": chat.0, "text": "Storing", "reply_markup": {"inline_keyboard": [[{"text": "Talk to a person", "callback_data": "ticket:open"}]]}}),
    )
    .await;
    let id = sent["message_id"].as_i64().unwrap();
    let query_id = tg.press_button(alice, chat, id, "ticket:open");
    let updates = ok(&tg, "getUpdates", json!({})).await;
    let query = &updates[0]["callback_query"];
    assert_eq!(query["id"], query_id);
    assert_eq!(query["data"], "ticket:open");
    assert_eq!(query["from"]["id"], alice.0);
    assert_eq!(query["message"]["message_id"], id);
    assert!(query["chat_instance"].is_string());

    ok(&tg, "answerCallbackQuery", json!({"callback_query_id": query_id, "text": "Een medewerker komt eraan"})).await;
    let answer = tg.callback_answer(&query_id).unwrap();
    assert_eq!(answer.text.as_deref(), Some("Een medewerker komt eraan"));
    assert_eq!(
        bad(&tg, "answerCallbackQuery", json!({"callback_query_id": query_id})).await,
        (400, "Bad Request: query is too old and response timeout expired or query ID is invalid".to_string())
    );
}

#[tokio::test]
async fn chat_actions_chats_and_files() {
    let tg = unlimited().await;
    let alice = tg.create_user(NewUser::named("Alice").last_name("de Vries").username("alice"));
    let chat = tg.private_chat(alice);
    assert_eq!(ok(&tg, "sendChatAction", json!({"chat_id": chat.0, "action": "typing"})).await, json!(true));
    assert_eq!(tg.chat_actions(chat), vec!["typing"]);
    assert_eq!(
        bad(&tg, "sendChatAction", json!({"chat_id": chat.0, "action": "dancing"})).await,
        (400, "Bad Request: wrong parameter action in request".to_string())
    );

    let info = ok(&tg, "getChat", json!({"chat_id": chat.0})).await;
    assert_eq!(
        (info["type"].as_str(), info["first_name"].as_str(), info["last_name"].as_str()),
        (Some("private"), Some("Alice"), Some("de Vries"))
    );
    let group = tg.create_group("Klanten", BotMembership::Member);
    let info = ok(&tg, "getChat", json!({"chat_id": group.0.to_string()})).await;
    assert_eq!((info["type"].as_str(), info["title"].as_str()), (Some("group"), Some("Klanten")));
    assert_eq!(bad(&tg, "getChat", json!({"chat_id": -1})).await, (400, "Bad Request: chat not found".to_string()));

    let posted = tg.send(alice, chat, UserMessage::document("factuur.pdf", "application/pdf", b"%PDF-1.7 test"));
    let update = ok(&tg, "getUpdates", json!({})).await[0].clone();
    assert_eq!(update["message"]["message_id"], posted.message_id);
    let document = &update["message"]["document"];
    assert_eq!(document["file_name"], "factuur.pdf");
    let file = ok(&tg, "getFile", json!({"file_id": document["file_id"]})).await;
    assert_eq!(file["file_size"], 13);
    let url = format!("{}/file/bot{}/{}", tg.url(), tg.token(), file["file_path"].as_str().unwrap());
    let bytes = client().get(url).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&bytes[..], b"%PDF-1.7 test");
    assert_eq!(
        bad(&tg, "getFile", json!({"file_id": "nope"})).await,
        (400, "Bad Request: invalid file_id".to_string())
    );
    let missing = client().get(format!("{}/file/bot{}/documents/none.pdf", tg.url(), tg.token())).send().await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}

#[tokio::test]
async fn command_menus_per_scope_and_language_with_their_documented_rules() {
    let tg = FakeTelegram::start().await;
    let group = tg.create_group("team", BotMembership::Member);
    let menu =
        json!([{"command": "status", "description": "Your case"}, {"command": "stop", "description": "No more"}]);
    assert_eq!(ok(&tg, "setMyCommands", json!({"commands": menu})).await, json!(true));
    let dutch = json!([{"command": "status", "description": "Je zaak"}]);
    ok(&tg, "setMyCommands", json!({"commands": dutch, "language_code": "nl"})).await;
    let staff = json!([{"command": "queue", "description": "The open tickets"}]);
    let scope = json!({"type": "chat", "chat_id": group.0});
    ok(&tg, "setMyCommands", json!({"commands": staff, "scope": scope})).await;
    assert_eq!(ok(&tg, "getMyCommands", json!({})).await, menu);
    assert_eq!(ok(&tg, "getMyCommands", json!({"language_code": "nl"})).await, dutch);
    assert_eq!(ok(&tg, "getMyCommands", json!({"scope": scope})).await, staff);
    assert_eq!(ok(&tg, "getMyCommands", json!({"language_code": "de"})).await, json!([]), "none of its own");
    assert_eq!(tg.commands("default", ""), [("status".into(), "Your case".into()), ("stop".into(), "No more".into())]);
    assert_eq!(tg.commands(&format!("chat:{}", group.0), ""), [("queue".to_owned(), "The open tickets".to_owned())]);

    for (body, says) in [
        (json!({"commands": [{"command": "Status", "description": "x"}]}), "Bad Request: BOT_COMMAND_INVALID"),
        (json!({"commands": [{"command": "/status", "description": "x"}]}), "Bad Request: BOT_COMMAND_INVALID"),
        (json!({"commands": [{"command": "status", "description": " "}]}), "command description must be non-empty"),
        (
            json!({"commands": [{"command": "status", "description": "x".repeat(257)}]}),
            "command description is too long",
        ),
        (json!({"commands": menu, "scope": {"type": "chat", "chat_id": -999}}), "Bad Request: chat not found"),
        (json!({"commands": menu, "language_code": "dutch"}), "invalid language code"),
    ] {
        let (status, answer) = call(&tg, "setMyCommands", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(answer["description"].as_str().unwrap().contains(says), "{body}: {answer}");
    }
    assert_eq!(ok(&tg, "getMyCommands", json!({})).await, menu, "a refused call changes nothing");
    ok(&tg, "setMyCommands", json!({"commands": []})).await;
    assert_eq!(ok(&tg, "getMyCommands", json!({})).await, json!([]), "an empty list deletes the menu");
}
