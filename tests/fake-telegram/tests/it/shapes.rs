//! The fake's answers against the Bot API documentation: `samples/types.json` holds the documented field lists
//! (required and optional fields with their JSON types) and `samples/responses/*.json` hand-written example
//! answers. Every sample must itself fit the field lists, and every answer the fake gives must fit them too —
//! all required fields present, no undocumented field, every type right — and carry the same fields as the
//! sample for the same call.

use std::path::PathBuf;

use serde_json::{Value, json};
use webcare_fake_telegram::{BotMembership, NewUser};

use crate::common::{call, ok, unlimited};

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("samples")
}

fn load(path: PathBuf) -> Value {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn sample(name: &str) -> Value {
    load(samples().join("responses").join(format!("{name}.json")))
}

/// Checks `value` against the documented type `ty`; collects every mismatch with its JSON path.
fn check(types: &Value, ty: &str, value: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(inner) = ty.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        match value.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check(types, inner, item, &format!("{path}[{i}]"), errors);
                }
            }
            None => errors.push(format!("{path}: expected an array of {inner}, got {value}")),
        }
        return;
    }
    let fits = match ty {
        "any" => true,
        "integer" => value.is_i64() || value.is_u64(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "true" => value == &json!(true),
        _ => {
            let def = types.get(ty).unwrap_or_else(|| panic!("type {ty} is not in types.json"));
            if let Some(field) = def.get("discriminator").and_then(Value::as_str) {
                let tag = value[field].as_str().unwrap_or_default();
                match def["variants"].get(tag).and_then(Value::as_str) {
                    Some(variant) => check(types, variant, value, path, errors),
                    None => errors.push(format!("{path}: {ty} with unknown {field} {tag:?}")),
                }
                return;
            }
            let Some(obj) = value.as_object() else {
                errors.push(format!("{path}: expected a {ty} object, got {value}"));
                return;
            };
            for (field, field_ty) in def["required"].as_object().unwrap() {
                match obj.get(field) {
                    Some(v) => check(types, field_ty.as_str().unwrap(), v, &format!("{path}.{field}"), errors),
                    None => errors.push(format!("{path}: {ty} lacks required field {field}")),
                }
            }
            for (field, v) in obj {
                if def["required"].get(field).is_some() {
                    continue;
                }
                match def["optional"].get(field).and_then(Value::as_str) {
                    Some(field_ty) => check(types, field_ty, v, &format!("{path}.{field}"), errors),
                    None => errors.push(format!("{path}: {ty} has undocumented field {field}")),
                }
            }
            true
        }
    };
    if !fits {
        errors.push(format!("{path}: expected {ty}, got {value}"));
    }
}

/// Checks a whole answer: the envelope, and `result` as `result_ty`.
fn check_answer(answer: &Value, result_ty: &str) -> Vec<String> {
    let types = load(samples().join("types.json"));
    let mut errors = Vec::new();
    check(&types, "Envelope", answer, "$", &mut errors);
    if answer["ok"] == true {
        check(&types, result_ty, &answer["result"], "$.result", &mut errors);
    } else {
        for field in ["error_code", "description"] {
            if answer.get(field).is_none() {
                errors.push(format!("$: an error lacks {field}"));
            }
        }
    }
    errors
}

/// The same fields at every level (values may differ); arrays are compared element by element.
fn same_fields(sample: &Value, actual: &Value, path: &str, errors: &mut Vec<String>) {
    match (sample, actual) {
        (Value::Object(s), Value::Object(a)) => {
            let sk: Vec<_> = s.keys().collect();
            let ak: Vec<_> = a.keys().collect();
            if sk != ak {
                errors.push(format!("{path}: sample has fields {sk:?}, the fake {ak:?}"));
            }
            for (k, v) in s {
                if let Some(av) = a.get(k) {
                    same_fields(v, av, &format!("{path}.{k}"), errors);
                }
            }
        }
        (Value::Array(s), Value::Array(a)) => {
            for (i, (sv, av)) in s.iter().zip(a).enumerate() {
                same_fields(sv, av, &format!("{path}[{i}]"), errors);
            }
        }
        (s, a) if std::mem::discriminant(s) != std::mem::discriminant(a) => {
            errors.push(format!("{path}: sample {s}, the fake {a}"))
        }
        _ => {}
    }
}

fn assert_like_sample(name: &str, result_ty: &str, actual: &Value) {
    let mut errors = check_answer(actual, result_ty);
    same_fields(&sample(name), actual, "$", &mut errors);
    assert!(errors.is_empty(), "{name}: {errors:#?}\nanswer: {actual}");
}

const RESULT_TYPES: &[(&str, &str)] = &[
    ("getMe", "User"),
    ("sendMessage", "Message"),
    ("getUpdates", "[Update]"),
    ("getUpdates_callback_query", "[Update]"),
    ("getUpdates_my_chat_member", "[Update]"),
    ("getChat", "ChatFullInfo"),
    ("getFile", "File"),
    ("getWebhookInfo", "WebhookInfo"),
    ("setWebhook", "boolean"),
    ("error_retry_after", "any"),
    ("error_migrate", "any"),
    ("error_blocked", "any"),
    ("error_unauthorized", "any"),
];

#[test]
fn every_sample_fits_the_documented_field_lists() {
    let listed: Vec<_> = std::fs::read_dir(samples().join("responses"))
        .unwrap()
        .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for name in &listed {
        let ty = RESULT_TYPES.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no type for sample {name}")).1;
        let errors = check_answer(&sample(name), ty);
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
    // The checker itself rejects what it should.
    let types = load(samples().join("types.json"));
    let mut errors = Vec::new();
    check(&types, "User", &json!({"id": "1", "is_bot": true, "nick": "x"}), "$", &mut errors);
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[tokio::test]
async fn the_fakes_answers_have_the_documented_shapes() {
    let tg = unlimited().await;
    let alice = tg.create_user(NewUser::named("Alice").username("alice").language("nl"));
    let chat = tg.private_chat(alice);
    let raw = |m: &'static str, b: Value| {
        let tg = &tg;
        async move { call(tg, m, b).await.1 }
    };

    assert_like_sample("getMe", "User", &raw("getMe", json!({})).await);
    assert_like_sample("getWebhookInfo", "WebhookInfo", &raw("getWebhookInfo", json!({})).await);

    let question = tg.send_text(alice, chat, "/start abc");
    assert_like_sample("getUpdates", "[Update]", &raw("getUpdates", json!({})).await);
    ok(&tg, "getUpdates", json!({"offset": question.update_id.unwrap() + 1})).await;

    let sent = raw(
        "sendMessage",
        json!({"chat_id": chat.0, "text": "<b>Hallo</b> <a href=\"https://example.org/\">Alice</a>", "parse_mode": "HTML",
               "reply_parameters": {"message_id": question.message_id}, "link_preview_options": {"is_disabled": true},
               "reply_markup": {"inline_keyboard": [[{"text": "Something else? Talk to a person", "callback_data": "ticket:open"}]]}}),
    )
    .await;
    assert_like_sample("sendMessage", "Message", &sent);

    let id = sent["result"]["message_id"].as_i64().unwrap();
    tg.press_button(alice, chat, id, "ticket:open");
    let mut updates = raw("getUpdates", json!({})).await;
    // The sample's user has no username or language; compare the fields the documentation fixes.
    let errors = check_answer(&updates, "[Update]");
    assert!(errors.is_empty(), "{errors:#?}");
    let query = &mut updates["result"][0]["callback_query"];
    for key in ["username", "language_code"] {
        query["from"].as_object_mut().unwrap().remove(key);
    }
    let message = query["message"].as_object_mut().unwrap();
    for key in ["entities", "reply_to_message", "link_preview_options"] {
        message.remove(key);
    }
    message["chat"].as_object_mut().unwrap().remove("username");
    assert_like_sample("getUpdates_callback_query", "[Update]", &updates);
    let last = updates["result"][0]["update_id"].as_i64().unwrap();
    ok(&tg, "getUpdates", json!({"offset": last + 1})).await;

    let edited = raw("editMessageText", json!({"chat_id": chat.0, "message_id": id, "text": "v2"})).await;
    assert!(check_answer(&edited, "Message").is_empty(), "{edited}");
    for (method, body) in [
        ("answerCallbackQuery", json!({"callback_query_id": "x"})),
        ("sendChatAction", json!({"chat_id": chat.0, "action": "typing"})),
        ("deleteMessage", json!({"chat_id": chat.0, "message_id": id})),
        ("deleteWebhook", json!({})),
    ] {
        let answer = raw(method, body).await;
        assert!(check_answer(&answer, "boolean").is_empty(), "{method}: {answer}");
    }

    tg.block_bot(alice);
    let mut updates = raw("getUpdates", json!({})).await;
    assert!(check_answer(&updates, "[Update]").is_empty(), "{updates}");
    for who in ["chat", "from"] {
        let o = updates["result"][0]["my_chat_member"][who].as_object_mut().unwrap();
        o.remove("username");
        o.remove("language_code");
    }
    assert_like_sample("getUpdates_my_chat_member", "[Update]", &updates);
    assert_like_sample("error_blocked", "any", &raw("sendMessage", json!({"chat_id": chat.0, "text": "x"})).await);

    let group = tg.create_group("Klanten", BotMembership::Member);
    assert_like_sample("getChat", "ChatFullInfo", &raw("getChat", json!({"chat_id": group.0})).await);
    let supergroup = tg.migrate_to_supergroup(group, alice);
    let migrated = raw("sendMessage", json!({"chat_id": group.0, "text": "x"})).await;
    assert_like_sample("error_migrate", "any", &migrated);
    assert_eq!(migrated["parameters"]["migrate_to_chat_id"], supergroup.0);
    let info = raw("getChat", json!({"chat_id": supergroup.0})).await;
    assert!(check_answer(&info, "ChatFullInfo").is_empty(), "{info}");

    tg.unblock_bot(alice);
    let doc =
        tg.send(alice, chat, webcare_fake_telegram::UserMessage::document("a.pdf", "application/pdf", b"%PDF-1.7 x"));
    let updates = raw("getUpdates", json!({"offset": -1})).await;
    assert!(check_answer(&updates, "[Update]").is_empty(), "{updates}");
    assert_eq!(updates["result"][0]["message"]["message_id"], doc.message_id);
    let file_id = updates["result"][0]["message"]["document"]["file_id"].clone();
    assert_like_sample("getFile", "File", &raw("getFile", json!({"file_id": file_id})).await);

    let unauthorized: Value =
        reqwest::get(format!("{}/bot1:nope/getMe", tg.url())).await.unwrap().json().await.unwrap();
    assert_like_sample("error_unauthorized", "any", &unauthorized);
}

#[tokio::test]
async fn rate_limit_and_webhook_answers_have_the_documented_shapes() {
    let tg = webcare_fake_telegram::FakeTelegram::start().await;
    let alice = tg.create_user(NewUser::named("Alice"));
    let chat = tg.private_chat(alice);
    ok(&tg, "sendMessage", json!({"chat_id": chat.0, "text": "1"})).await;
    let limited = call(&tg, "sendMessage", json!({"chat_id": chat.0, "text": "2"})).await.1;
    assert_like_sample("error_retry_after", "any", &limited);
    let set = call(&tg, "setWebhook", json!({"url": "https://127.0.0.1:9/hook"})).await.1;
    assert_like_sample("setWebhook", "boolean", &set);
    let info = call(&tg, "getWebhookInfo", json!({})).await.1;
    assert!(check_answer(&info, "WebhookInfo").is_empty(), "{info}");
}
