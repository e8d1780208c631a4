//! Replay and eval on a small fixture written for the repository (`tests/fixtures/messages.csv`).

use std::sync::Arc;

use webcare_bridge::{Classifier, InputFormat, ReplayOptions, eval, read_notices, replay};

const FIXTURE: &str = include_str!("../fixtures/messages.csv");

fn run(
    options: &ReplayOptions,
    input: &[u8],
    format: InputFormat,
) -> (Vec<serde_json::Value>, webcare_bridge::ReplaySummary) {
    let mut out = Vec::new();
    let mut seen = 0;
    let summary = replay(Arc::new(Classifier::default()), input, format, options, &mut out, &mut |done, total| {
        assert!(done <= total);
        seen = done;
    })
    .unwrap();
    assert_eq!(seen, summary.messages, "progress reaches the end");
    let lines = String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (lines, summary)
}

#[test]
fn replay_writes_one_line_per_message_in_the_interface_shape() {
    let (lines, summary) = run(&ReplayOptions::default(), FIXTURE.as_bytes(), InputFormat::Csv);
    let messages: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("id").is_some()).collect();
    assert_eq!(messages.len(), 8);
    assert_eq!(summary.messages, 8);
    for m in &messages {
        for key in ["id", "intent", "category", "service", "region", "pii", "cluster", "notice", "action", "reasons"] {
            assert!(m.get(key).is_some(), "{key} missing in {m}");
        }
    }
    let by_id = |id: &str| messages.iter().find(|m| m["id"] == id).unwrap();
    assert_eq!(by_id("m1")["action"], "hold_and_subscribe");
    assert_eq!(by_id("m1")["cluster"], by_id("m2")["cluster"]);
    assert_eq!(by_id("m1")["cluster"], by_id("m3")["cluster"], "the place hint counts");
    assert_ne!(by_id("m1")["cluster"], by_id("m4")["cluster"], "another account, another cluster");
    assert_eq!(by_id("m5")["action"], "move_private", "replayed posts are public unless a `public` column says not");
    assert_eq!(by_id("m5")["pii"], serde_json::json!(["customer_number"]));
    assert_eq!(by_id("m6")["action"], "ignore");
    assert_eq!(by_id("m8")["action"], "ticket");
    // Clusters that never became a notice end as tickets, after the messages.
    let tickets = lines.iter().filter(|l| l.get("ticket").is_some()).count();
    assert_eq!(tickets, summary.expired_tickets);
    assert!(tickets >= 3);
    assert!(summary.to_string().starts_with("replayed 8 messages"));
}

#[test]
fn a_language_column_answers_what_the_text_does_not_say() {
    let german = "Guten Tag, ich habe eine Frage zu meiner Rechnung von diesem Monat, bitte um Hilfe";
    let input = [
        serde_json::json!({"id": "g1", "created_at": "2026-11-25T10:00:00Z", "text": german, "language": "en-GB"}),
        serde_json::json!({"id": "g2", "created_at": "2026-11-25T10:01:00Z", "text": german}),
        serde_json::json!({"id": "d1", "created_at": "2026-11-25T10:02:00Z", "text": "Mijn factuur klopt niet",
            "language": "en"}),
    ]
    .map(|l| l.to_string())
    .join("\n");
    let (lines, _) = run(&ReplayOptions::default(), input.as_bytes(), InputFormat::Jsonl);
    let hint = |id: &str| {
        let line = lines.iter().find(|l| l["id"] == id).unwrap();
        line["reasons"].as_array().unwrap().iter().find(|r| r["kind"] == "platform_language").cloned()
    };
    assert_eq!(hint("g1"), Some(serde_json::json!({"kind": "platform_language", "language": "en"})));
    assert_eq!(hint("g2"), None, "no column value, no hint");
    assert_eq!(hint("d1"), None, "Dutch text is answered in Dutch: the hint is not used");
}

#[test]
fn notices_answer_during_their_active_time_and_only_for_their_account() {
    let notices = read_notices(
        r#"
[[notice]]
id = 42
text = "Er is een storing in Utrecht."
texts = { en = "There is an outage in Utrecht." }
services = ["internet"]
regions = ["Utrecht"]
account = "kpn"
active_from = "2026-03-02T08:02:00Z"
"#,
    )
    .unwrap();
    let options = ReplayOptions { notices, ..ReplayOptions::default() };
    let (lines, _) = run(&options, FIXTURE.as_bytes(), InputFormat::Csv);
    let by_id = |id: &str| lines.iter().find(|m| m["id"] == id).unwrap();
    assert_eq!(by_id("m1")["action"], "hold_and_subscribe", "before the notice was active");
    assert_eq!(by_id("m2")["action"], "auto_answer");
    assert_eq!(by_id("m2")["notice"], "42");
    assert_eq!(by_id("m4")["action"], "hold_and_subscribe", "the notice belongs to another account");
    // When the notice became active, the customer already waiting in Utrecht's cluster got it, as live; so only
    // the other account's Utrecht cluster and Amsterdam's end as tickets.
    let broadcasts: Vec<&serde_json::Value> = lines.iter().filter_map(|l| l.get("broadcast")).collect();
    assert_eq!(broadcasts.len(), 1, "{broadcasts:?}");
    assert_eq!(broadcasts[0]["notice"], "42");
    assert_eq!(broadcasts[0]["cluster"], by_id("m1")["cluster"]);
    assert_eq!(broadcasts[0]["at"], "2026-03-02T08:02:00Z");
    assert_eq!(broadcasts[0]["customers"], serde_json::json!(["u1"]));
    let broadcast_line = lines.iter().position(|l| l.get("broadcast").is_some());
    assert!(broadcast_line < lines.iter().position(|l| l["id"] == "m2"), "in time order, before m2 (08:03)");
    let mut ticketed: Vec<&str> =
        lines.iter().filter_map(|l| l.get("ticket")).map(|t| t["customer"].as_str().unwrap()).collect();
    ticketed.sort();
    assert_eq!(ticketed, ["u4", "u7"]);
    let json = read_notices(r#"[{"id": 1, "text": "x", "regions": []}]"#).unwrap();
    assert_eq!(json.len(), 1);
    assert!(read_notices("[[notice]]\nid = 1\n").is_err(), "a notice needs a text");
}

#[test]
fn jsonl_input_and_bad_rows_are_reported_with_their_line() {
    let jsonl = "{\"id\": 1, \"created_at\": \"2026-03-02T08:00:00Z\", \"text\": \"storing?\"}\n\n{\"id\": \"2\", \"created_at\": \"2026-03-02 08:01:00\", \"text\": \"bedankt\"}\n";
    let (lines, summary) = run(&ReplayOptions::default(), jsonl.as_bytes(), InputFormat::Jsonl);
    assert_eq!(summary.messages, 2);
    assert_eq!(lines[0]["id"], "1");
    let bad = "{\"id\": 1, \"created_at\": \"yesterday\", \"text\": \"x\"}\n";
    let err = replay(
        Arc::new(Classifier::default()),
        bad.as_bytes(),
        InputFormat::Jsonl,
        &ReplayOptions::default(),
        &mut Vec::new(),
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("line 1") && err.contains("created_at"), "{err}");
    let err = replay(
        Arc::new(Classifier::default()),
        "id,text\n1,x\n".as_bytes(),
        InputFormat::Csv,
        &ReplayOptions::default(),
        &mut Vec::new(),
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("created_at"), "{err}");
}

#[test]
fn eval_computes_the_figures_for_all_and_high_confidence_rows() {
    let report = eval(
        Arc::new(Classifier::default()),
        FIXTURE.as_bytes(),
        InputFormat::Csv,
        &ReplayOptions::default(),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!((report.all.rows, report.high.rows), (8, 6));
    assert_eq!(report.all.outage.f1, 1.0, "{report}");
    assert_eq!((report.all.pii.tp, report.all.pii.fp, report.all.pii.fn_), (1, 0, 0));
    // m1, m2, m3 share label c1 and one cluster of ours: three pairs, all right.
    assert_eq!((report.all.cluster.tp, report.all.cluster.fp, report.all.cluster.fn_), (3, 0, 0), "{report}");
    // Among high rows only m1 and m2 are left of c1.
    assert_eq!((report.high.cluster.tp, report.high.cluster.fp), (1, 0));
    let text = report.to_string();
    assert!(text.contains("intent outage") && text.contains("cluster pairs"), "{text}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["all"]["cluster"]["precision"], 1.0);
}

#[test]
fn the_replay_window_is_an_option_and_stretches_the_grace_period() {
    use webcare_bridge::{ReplayOptions, parse_duration};
    assert_eq!(parse_duration("3h"), Ok(3 * 3600));
    assert_eq!(parse_duration("90m"), Ok(90 * 60));
    assert_eq!(parse_duration("45"), Ok(45));
    assert!(parse_duration("3 weeks").is_err());
    assert!(parse_duration("0h").is_err());
    let options = ReplayOptions::default().with_window(3 * 3600);
    assert_eq!(options.engine.window_secs, 3 * 3600);
    assert!(options.engine.grace_secs >= 3 * 3600);
    let short = ReplayOptions::default().with_window(600);
    assert_eq!(short.engine.grace_secs, ReplayOptions::default().engine.grace_secs);
}
