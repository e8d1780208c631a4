//! The storage contract: every case runs on SQLite and on a real PostgreSQL, and must pass on both.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use webcare_domain::{
    AgentId, ClusterState, ConversationKind, DecisionField, InboundFilter, InboundId, Inserted, NewAgent, NewCluster,
    NewConversation, NewCustomer, NewInbound, NewNotice, NewOutbox, NewTicket, NoticeChange, NoticeState, OutboxState,
    Platform, Priority, Role, Service, Store, StoreError, Subscription, SubscriptionTarget, TicketEventKind,
    TicketState, Timestamp,
};
use webcare_storage::Db;
use webcare_tests::TestDb;

fn t(secs: i64) -> Timestamp {
    Utc.timestamp_opt(1_790_000_000 + secs, 0).unwrap()
}

contract!(
    customers_and_conversations_are_stored_once,
    inbound_messages_are_stored_once,
    edits_deletions_and_decisions_are_kept,
    messages_are_listed_by_what_was_decided,
    notices_keep_every_version,
    concurrent_notice_updates_get_consecutive_versions,
    clusters_hand_their_members_to_a_notice,
    subscriptions_are_unique_and_stop_ends_them,
    tickets_keep_their_history,
    tickets_are_found_by_words_name_number_and_customer,
    the_work_waiting_is_counted,
    agents_have_unique_names_and_hashed_tokens,
    outbox_keys_are_idempotent,
    outbox_batches_are_idempotent_too,
    outbox_claims_by_priority_and_due_time,
    outbox_marks_need_the_claim,
    outbox_lapsed_leases_are_claimed_again,
    outbox_concurrent_claimers_never_share_a_row,
    outbox_rows_of_one_chat_go_one_at_a_time_in_order,
    lexicon_changes_are_one_per_term_and_kept_in_order,
    missing_rows_are_not_found,
    leases_have_one_holder_and_pass_on_when_they_run_out,
    reload_requests_count_up_per_name,
    stop_cancels_pending_notice_messages_but_not_answers,
    paid_broadcast_is_kept_and_subscribers_are_counted_per_platform,
    send_slots_follow_each_other_and_start_now_when_idle_and_a_hold_delays_them,
    concurrent_reservations_never_share_a_slot,
    a_unit_of_work_commits_all_or_nothing,
    a_unit_goes_back_to_its_mark,
    batches_store_like_one_call_after_another,
    batch_effects_store_like_one_call_after_another,
    a_ticket_batch_refuses_what_changed_since_it_was_read,
    login_failures_are_counted_per_key_within_the_window,
    chat_link_codes_link_an_account_once_until_they_expire,
);

async fn chat_link_codes_link_an_account_once_until_they_expire(t_db: &TestDb) {
    let db = t_db.db();
    let new = |name: &str| NewAgent { name: name.into(), role: Role::Agent, password_hash: None, at: t(0) };
    let ann = db.create_agent(new("ann")).await.unwrap();
    let bo = db.create_agent(new("bo")).await.unwrap();
    assert!(db.agent_by_chat_account(Platform::Telegram, "42").await.unwrap().is_none());
    db.add_chat_link_code(ann.id, "code-a", t(600), t(0)).await.unwrap();
    assert_eq!(db.redeem_chat_link_code("code-x", Platform::Telegram, "42", t(1)).await.unwrap(), None, "unknown");
    assert_eq!(db.redeem_chat_link_code("code-a", Platform::Telegram, "42", t(1)).await.unwrap(), Some(ann.id));
    assert_eq!(db.redeem_chat_link_code("code-a", Platform::Discord, "7", t(2)).await.unwrap(), None, "used once");
    assert_eq!(db.agent_by_chat_account(Platform::Telegram, "42").await.unwrap().unwrap().id, ann.id);
    assert!(db.agent_by_chat_account(Platform::Discord, "42").await.unwrap().is_none(), "per platform");
    // An expired code links nothing.
    db.add_chat_link_code(bo.id, "code-b", t(600), t(0)).await.unwrap();
    assert_eq!(db.redeem_chat_link_code("code-b", Platform::Telegram, "42", t(600)).await.unwrap(), None, "expired");
    assert_eq!(db.agent_by_chat_account(Platform::Telegram, "42").await.unwrap().unwrap().id, ann.id);
    // A valid code moves the account to its agent; each agent may have several accounts.
    db.add_chat_link_code(bo.id, "code-c", t(1200), t(700)).await.unwrap();
    assert_eq!(db.redeem_chat_link_code("code-c", Platform::Telegram, "42", t(701)).await.unwrap(), Some(bo.id));
    db.add_chat_link_code(bo.id, "code-d", t(1200), t(702)).await.unwrap();
    assert_eq!(db.redeem_chat_link_code("code-d", Platform::Discord, "7", t(703)).await.unwrap(), Some(bo.id));
    assert_eq!(db.agent_by_chat_account(Platform::Telegram, "42").await.unwrap().unwrap().id, bo.id);
    assert_eq!(
        db.chat_accounts(bo.id).await.unwrap(),
        vec![(Platform::Telegram, "42".to_owned()), (Platform::Discord, "7".to_owned())]
    );
    assert!(db.chat_accounts(ann.id).await.unwrap().is_empty());
    assert!(!db.unlink_chat_account(ann.id, Platform::Discord, "7").await.unwrap(), "only its own agent unlinks it");
    assert!(db.unlink_chat_account(bo.id, Platform::Discord, "7").await.unwrap());
    assert!(db.agent_by_chat_account(Platform::Discord, "7").await.unwrap().is_none());
    db.add_chat_link_code(bo.id, "code-e", t(1200), t(704)).await.unwrap();
    assert_eq!(db.redeem_chat_link_code("code-e", Platform::Discord, "7", t(705)).await.unwrap(), Some(bo.id));
    assert!(
        matches!(db.add_chat_link_code(ann.id, "code-d", t(2000), t(800)).await, Ok(())),
        "a redeemed code is gone"
    );
    // A deactivated agent's accounts act for nobody.
    db.set_agent_active(bo.id, false).await.unwrap();
    assert!(db.agent_by_chat_account(Platform::Discord, "7").await.unwrap().is_none());
}

async fn login_failures_are_counted_per_key_within_the_window(t_db: &TestDb) {
    let db = t_db.db();
    assert_eq!(db.login_failures("name:bo", t(0)).await.unwrap(), (0, None));
    for i in 1..=3 {
        db.record_login_failure("name:bo", t(i * 100), t(0)).await.unwrap();
    }
    db.record_login_failure("addr:192.0.2.1", t(350), t(0)).await.unwrap();
    assert_eq!(db.login_failures("name:bo", t(0)).await.unwrap(), (3, Some(t(100))));
    assert_eq!(db.login_failures("name:bo", t(150)).await.unwrap(), (2, Some(t(200))), "only within the window");
    assert_eq!(db.login_failures("addr:192.0.2.1", t(0)).await.unwrap(), (1, Some(t(350))));
    // A new failure forgets every key's failures before the window.
    db.record_login_failure("name:cy", t(400), t(250)).await.unwrap();
    assert_eq!(db.login_failures("name:bo", t(0)).await.unwrap(), (1, Some(t(300))));
    assert_eq!(db.login_failures("addr:192.0.2.1", t(0)).await.unwrap().0, 1);
    db.clear_login_failures("name:bo").await.unwrap();
    assert_eq!(db.login_failures("name:bo", t(0)).await.unwrap(), (0, None));
    assert_eq!(db.login_failures("name:cy", t(0)).await.unwrap().0, 1, "other keys stay");
}

async fn stop_cancels_pending_notice_messages_but_not_answers(t_db: &TestDb) {
    let db = t_db.db();
    let (who, chat) = customer_and_chat(db, ConversationKind::Private).await;
    let other = self::chat(db, "other").await;
    let n = db.create_notice(new_notice(&[], t(0))).await.unwrap();
    db.subscribe(&Subscription::new(chat.id, Some(who.id), SubscriptionTarget::Notice(n.id), t(1))).await.unwrap();
    let row = |c, key: &str, p| NewOutbox::message(c, key, key, p, t(2));
    let mine = db.enqueue(row(chat.id, "notice:1:v1:conv:1", Priority::BROADCAST), t(2)).await.unwrap().into_inner();
    let answer = db.enqueue(row(chat.id, "answer:1", Priority::AGENT_REPLY), t(2)).await.unwrap().into_inner();
    let theirs = db.enqueue(row(other, "notice:1:v1:conv:2", Priority::BROADCAST), t(2)).await.unwrap().into_inner();
    assert_eq!(db.unsubscribe_all(chat.id).await.unwrap(), 1);
    assert_eq!(db.outbox_item(mine.id).await.unwrap().state, OutboxState::Cancelled, "no more notice messages");
    assert_eq!(db.outbox_item(answer.id).await.unwrap().state, OutboxState::Pending, "a person's answer still goes");
    assert_eq!(db.outbox_item(theirs.id).await.unwrap().state, OutboxState::Pending, "other chats keep theirs");
}

async fn paid_broadcast_is_kept_and_subscribers_are_counted_per_platform(t_db: &TestDb) {
    let db = t_db.db();
    let n = db.create_notice(NewNotice { paid_broadcast: true, ..new_notice(&[], t(0)) }).await.unwrap();
    assert!(n.paid_broadcast);
    let n = db.update_notice(n.id, NoticeChange { text: Some("update".into()), ..Default::default() }, t(1)).await;
    assert!(n.unwrap().paid_broadcast, "a change that does not mention it keeps it");
    let n = db.notices(false).await.unwrap().pop().unwrap();
    let off = NoticeChange { paid_broadcast: Some(false), ..Default::default() };
    assert!(!db.update_notice(n.id, off, t(2)).await.unwrap().paid_broadcast);
    for (platform, id) in [(Platform::Telegram, "t1"), (Platform::Telegram, "t2"), (Platform::Discord, "d1")] {
        let c = db
            .upsert_conversation(
                NewConversation { platform, platform_chat_id: id.into(), kind: ConversationKind::Private, title: None },
                t(3),
            )
            .await
            .unwrap();
        db.subscribe(&Subscription::new(c.id, None, SubscriptionTarget::Notice(n.id), t(3))).await.unwrap();
    }
    let counts = db.subscriber_counts(SubscriptionTarget::Notice(n.id)).await.unwrap();
    assert_eq!(counts, vec![(Platform::Discord, 1), (Platform::Telegram, 2)]);
}

async fn send_slots_follow_each_other_and_start_now_when_idle_and_a_hold_delays_them(t_db: &TestDb) {
    let db = t_db.db();
    let ms = Duration::from_millis;
    let at = |millis: i64| t(0) + chrono::Duration::milliseconds(millis);
    assert_eq!(db.reserve_send_slots("telegram:global", 3, ms(10), at(0)).await.unwrap(), at(0));
    // Three slots of 10 ms from 0: the next reservation starts at 30 ms, even when asked for at 5 ms.
    assert_eq!(db.reserve_send_slots("telegram:global", 2, ms(10), at(5)).await.unwrap(), at(30));
    // Another bucket is another budget.
    assert_eq!(db.reserve_send_slots("discord:global", 1, ms(20), at(5)).await.unwrap(), at(5));
    // A budget that was idle starts from now, not from where it stopped (no saved-up burst beyond one slot).
    assert_eq!(db.reserve_send_slots("telegram:global", 1, ms(10), at(1000)).await.unwrap(), at(1000));
    assert_eq!(db.reserve_send_slots("telegram:global", 1, ms(10), at(1000)).await.unwrap(), at(1010));
    // A 429 for the whole bot holds the budget: no slot before its end, for anyone; an earlier hold changes nothing.
    db.hold_send_budget("telegram:global", at(3000)).await.unwrap();
    db.hold_send_budget("telegram:global", at(2000)).await.unwrap();
    assert_eq!(db.reserve_send_slots("telegram:global", 2, ms(10), at(1100)).await.unwrap(), at(3000));
    assert_eq!(db.reserve_send_slots("telegram:global", 1, ms(10), at(1100)).await.unwrap(), at(3020));
    db.hold_send_budget("telegram:paid", at(500)).await.unwrap();
    assert_eq!(db.reserve_send_slots("telegram:paid", 1, ms(10), at(0)).await.unwrap(), at(500), "a new bucket too");
}

async fn concurrent_reservations_never_share_a_slot(t_db: &TestDb) {
    // Two pools, as two webcare processes would have, reserving from one bucket at once.
    let pools = [t_db.another().await, t_db.another().await];
    let interval = Duration::from_millis(1);
    let mut tasks = Vec::new();
    for (p, pool) in pools.iter().enumerate() {
        for w in 0..3 {
            let pool = pool.clone();
            tasks.push(tokio::spawn(async move {
                let mut starts = Vec::new();
                for i in 0..20u32 {
                    let count = 1 + (i + w + p as u32) % 4;
                    let start = pool.reserve_send_slots("telegram:global", count, interval, t(0)).await.unwrap();
                    starts.push((start, count));
                }
                starts
            }));
        }
    }
    let mut all: Vec<(Timestamp, u32)> = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    let mut expected = t(0);
    for (start, count) in all {
        assert_eq!(start, expected, "reservations are back to back, never overlapping");
        expected = start + chrono::Duration::milliseconds(i64::from(count));
    }
}

/// A Telegram user `id` named `name`.
async fn telegram_customer(db: &Db, id: &str, name: &str) -> webcare_domain::Customer {
    let new = NewCustomer { platform: Platform::Telegram, platform_user_id: id.into(), display_name: name.into() };
    db.upsert_customer(new, t(0)).await.unwrap()
}

async fn customer_and_chat(
    db: &Db,
    kind: ConversationKind,
) -> (webcare_domain::Customer, webcare_domain::Conversation) {
    let customer = telegram_customer(db, "u1", "Anna").await;
    let chat = db
        .upsert_conversation(
            NewConversation {
                platform: Platform::Telegram,
                platform_chat_id: "c1".into(),
                kind,
                title: Some("Anna".into()),
            },
            t(0),
        )
        .await
        .unwrap();
    (customer, chat)
}

async fn customers_and_conversations_are_stored_once(t_db: &TestDb) {
    let db = t_db.db();
    let (a, chat) = customer_and_chat(db, ConversationKind::Private).await;
    let again = db
        .upsert_customer(
            NewCustomer { platform: Platform::Telegram, platform_user_id: "u1".into(), display_name: "Anna B".into() },
            t(5),
        )
        .await
        .unwrap();
    assert_eq!(again.id, a.id);
    assert_eq!(again.display_name, "Anna B");
    assert_eq!(again.created_at, t(0));
    // The same user id on another platform is another customer.
    let other = db
        .upsert_customer(
            NewCustomer { platform: Platform::Discord, platform_user_id: "u1".into(), display_name: "Anna".into() },
            t(5),
        )
        .await
        .unwrap();
    assert_ne!(other.id, a.id);

    let chat2 = db
        .upsert_conversation(
            NewConversation {
                platform: Platform::Telegram,
                platform_chat_id: "c1".into(),
                kind: ConversationKind::Private,
                title: None,
            },
            t(9),
        )
        .await
        .unwrap();
    assert_eq!(chat2.id, chat.id);
    assert_eq!(chat2.title.as_deref(), Some("Anna"), "a missing title keeps the stored one");
    assert_eq!(db.conversation(chat.id).await.unwrap(), chat2);

    db.set_customer_unreachable(a.id, true).await.unwrap();
    assert!(db.customer(a.id).await.unwrap().unreachable);
}

/// A billing ticket without due times.
fn billing_ticket(
    conversation: webcare_domain::ConversationId,
    who: &webcare_domain::Customer,
    subject: &str,
    at: Timestamp,
) -> NewTicket {
    NewTicket {
        conversation,
        customer: who.id,
        subject: subject.into(),
        priority: 3,
        category: "billing".into(),
        due_at: None,
        first_response_due_at: None,
        resolution_due_at: None,
        tags: Vec::new(),
        at,
    }
}

fn inbound(chat: &webcare_domain::Conversation, who: &webcare_domain::Customer, id: &str, text: &str) -> NewInbound {
    NewInbound {
        platform: Platform::Telegram,
        platform_message_id: id.into(),
        conversation: chat.id,
        customer: who.id,
        text: text.into(),
        attachments: vec!["photo".into()],
        received_at: t(10),
        place: None,
        language: None,
    }
}

async fn inbound_messages_are_stored_once(t_db: &TestDb) {
    let db = t_db.db();
    let (who, chat) = customer_and_chat(db, ConversationKind::Private).await;
    let first = db.insert_inbound(inbound(&chat, &who, "c1/1", "storing in Utrecht?")).await.unwrap();
    assert!(first.is_new());
    let redelivered = db.insert_inbound(inbound(&chat, &who, "c1/1", "something else")).await.unwrap();
    match redelivered {
        Inserted::Existing(m) => {
            assert_eq!(m.id, first.get().id);
            assert_eq!(m.text, "storing in Utrecht?", "a redelivery never overwrites the stored text");
            assert_eq!(m.attachments, vec!["photo".to_owned()]);
            assert_eq!(m.received_at, t(10));
        }
        Inserted::New(_) => panic!("a redelivered message was stored twice"),
    }
    let second = db.insert_inbound(inbound(&chat, &who, "c1/2", "nog steeds niks")).await.unwrap();
    assert!(second.is_new());
    assert_ne!(second.get().id, first.get().id);
}

async fn edits_deletions_and_decisions_are_kept(t_db: &TestDb) {
    let db = t_db.db();
    let (who, chat) = customer_and_chat(db, ConversationKind::Public).await;
    let m = db.insert_inbound(inbound(&chat, &who, "c1/7", "geen internet")).await.unwrap().into_inner();
    let edited = db.edit_inbound(Platform::Telegram, "c1/7", "geen internet in 3512", t(20)).await.unwrap().unwrap();
    assert_eq!(edited.text, "geen internet in 3512");
    assert_eq!(edited.edited_at, Some(t(20)));
    assert!(db.edit_inbound(Platform::Telegram, "c1/404", "x", t(20)).await.unwrap().is_none());
    assert!(db.delete_inbound(Platform::Telegram, "c1/7", t(30)).await.unwrap());
    assert!(!db.delete_inbound(Platform::Discord, "c1/7", t(30)).await.unwrap());
    let decision = serde_json::json!({"intent": "outage", "reasons": ["matched `geen internet`"]});
    db.set_decision(m.id, &decision).await.unwrap();
    let stored = db.inbound(m.id).await.unwrap();
    assert_eq!(stored.decision, Some(decision));
    assert_eq!(stored.deleted_at, Some(t(30)));
}

async fn messages_are_listed_by_what_was_decided(t_db: &TestDb) {
    let db = t_db.db();
    let (who, chat) = customer_and_chat(db, ConversationKind::Public).await;
    let texts = [
        (
            "m1",
            "Storing in Utrecht?",
            0,
            Some(
                r#"{"action":"auto_answer","intent":"outage","service":"internet","notice":7,"cluster":null,"ticket":null}"#,
            ),
        ),
        (
            "m2",
            "GEEN internet in Zeist",
            60,
            Some(
                r#"{"action":"hold_and_subscribe","intent":"outage","service":"internet","notice":null,"cluster":3,"ticket":null}"#,
            ),
        ),
        (
            "m3",
            "Mijn factuur 100% te hoog_",
            120,
            Some(r#"{"action":"ticket","intent":"case","service":"unknown","notice":null,"cluster":null,"ticket":12}"#),
        ),
        ("m4", "nog geen beslissing", 180, None),
    ];
    let mut ids = Vec::new();
    for (id, text, at, decision) in texts {
        let mut new = inbound(&chat, &who, id, text);
        new.received_at = t(at);
        new.platform = if id == "m2" { Platform::Discord } else { Platform::Telegram };
        let m = db.insert_inbound(new).await.unwrap().into_inner();
        if let Some(d) = decision {
            db.set_decisions(&[(m.id, d.to_owned())]).await.unwrap();
        }
        ids.push(m.id);
    }
    let page = |filter: InboundFilter, limit: u32| async move {
        db.inbound_page(&filter, limit).await.unwrap().into_iter().map(|m| m.id).collect::<Vec<InboundId>>()
    };
    let field = |f: DecisionField, v: &str| InboundFilter { decision: vec![(f, v.to_owned())], ..Default::default() };
    // Newest first, a page at a time.
    assert_eq!(page(InboundFilter::default(), 10).await, vec![ids[3], ids[2], ids[1], ids[0]]);
    assert_eq!(page(InboundFilter::default(), 2).await, vec![ids[3], ids[2]]);
    let older = InboundFilter { before: Some(ids[2]), ..Default::default() };
    assert_eq!(page(older, 2).await, vec![ids[1], ids[0]]);
    // A decision's words and ids, compared as text on both backends.
    assert_eq!(page(field(DecisionField::Action, "auto_answer"), 10).await, vec![ids[0]]);
    assert_eq!(page(field(DecisionField::Intent, "outage"), 10).await, vec![ids[1], ids[0]]);
    assert_eq!(page(field(DecisionField::Notice, "7"), 10).await, vec![ids[0]]);
    assert_eq!(page(field(DecisionField::Cluster, "3"), 10).await, vec![ids[1]]);
    assert_eq!(page(field(DecisionField::Ticket, "12"), 10).await, vec![ids[2]]);
    assert_eq!(page(field(DecisionField::Ticket, "1"), 10).await, Vec::<InboundId>::new());
    let both = InboundFilter {
        decision: vec![(DecisionField::Intent, "outage".into()), (DecisionField::Service, "internet".into())],
        platform: Some(Platform::Discord),
        ..Default::default()
    };
    assert_eq!(page(both, 10).await, vec![ids[1]]);
    assert_eq!(page(InboundFilter { undecided: true, ..Default::default() }, 10).await, vec![ids[3]]);
    // Text, ignoring case, with LIKE's own characters taken literally.
    let text = |q: &str| InboundFilter { text: Some(q.to_owned()), ..Default::default() };
    assert_eq!(page(text("geen internet"), 10).await, vec![ids[1]]);
    assert_eq!(page(text("100%"), 10).await, vec![ids[2]]);
    assert_eq!(page(text("0%"), 10).await, vec![ids[2]]);
    assert_eq!(page(text("hoog_"), 10).await, vec![ids[2]]);
    assert_eq!(page(text("g_en"), 10).await, Vec::<InboundId>::new());
    assert_eq!(
        page(InboundFilter { since: Some(t(60)), ..Default::default() }, 10).await,
        vec![ids[3], ids[2], ids[1]]
    );
    // One customer's messages on one conversation (what they wrote in, for the language to answer them in).
    let bob = telegram_customer(db, "u2", "Bob").await;
    let theirs = db.insert_inbound(inbound(&chat, &bob, "b1", "ook geen internet")).await.unwrap().into_inner();
    let of = |customer: Option<webcare_domain::CustomerId>, conversation: Option<webcare_domain::ConversationId>| {
        InboundFilter { customer, conversation, ..Default::default() }
    };
    assert_eq!(page(of(Some(bob.id), Some(chat.id)), 10).await, vec![theirs.id]);
    assert_eq!(page(of(Some(who.id), Some(chat.id)), 2).await, vec![ids[3], ids[2]]);
    assert_eq!(page(of(None, Some(chat.id)), 10).await.len(), 5);
    assert!(page(of(None, Some(webcare_domain::ConversationId(chat.id.0 + 1000))), 10).await.is_empty());
}

/// A billing ticket, priority 3, due at `due`: a base for other tests' tickets.
pub(crate) fn new_ticket(
    conversation: webcare_domain::ConversationId,
    customer: webcare_domain::CustomerId,
    subject: &str,
    due: Option<Timestamp>,
    at: Timestamp,
) -> NewTicket {
    NewTicket {
        conversation,
        customer,
        subject: subject.into(),
        priority: 3,
        category: "billing".into(),
        due_at: due,
        first_response_due_at: None,
        resolution_due_at: None,
        tags: Vec::new(),
        at,
    }
}

/// An internet notice for `regions`, active, with a Dutch text: a base for other tests' notices.
pub(crate) fn new_notice(regions: &[&str], at: Timestamp) -> NewNotice {
    NewNotice {
        title: "Storing internet Utrecht".into(),
        text: "We are investigating an internet outage in Utrecht.".into(),
        texts: BTreeMap::from([("nl".into(), "We onderzoeken een internetstoring in Utrecht.".into())]),
        services: vec![Service::Internet],
        regions: regions.iter().map(|r| r.to_string()).collect(),
        state: NoticeState::Investigating,
        draft: false,
        paid_broadcast: false,
        cluster: None,
        author: None,
        approved_by: None,
        at,
    }
}

async fn notices_keep_every_version(t_db: &TestDb) {
    let db = t_db.db();
    let admin = db
        .create_agent(NewAgent { name: "ria".into(), role: Role::Admin, password_hash: None, at: t(0) })
        .await
        .unwrap();
    let mut new = new_notice(&["Utrecht"], t(1));
    new.author = Some(admin.id);
    let n = db.create_notice(new).await.unwrap();
    assert_eq!(n.version, 1);
    assert!(n.is_active());
    assert_eq!(n.text_for("nl"), "We onderzoeken een internetstoring in Utrecht.");
    assert_eq!(n.text_for("en"), "We are investigating an internet outage in Utrecht.");

    let n2 = db
        .update_notice(
            n.id,
            NoticeChange {
                text: Some("Cause found: a cable cut near Utrecht.".into()),
                state: Some(NoticeState::Identified),
                regions: Some(vec!["Utrecht".into(), "Nieuwegein".into()]),
                author: Some(admin.id),
                ..Default::default()
            },
            t(60),
        )
        .await
        .unwrap();
    assert_eq!(n2.version, 2);
    assert_eq!(n2.state, NoticeState::Identified);
    assert_eq!(n2.services, vec![Service::Internet], "unchanged fields keep their value");
    assert_eq!(n2.texts, n.texts);
    assert_eq!(n2.updated_at, t(60));
    assert_eq!(n2.created_at, t(1));

    let resolved = db
        .update_notice(n.id, NoticeChange { state: Some(NoticeState::Resolved), ..Default::default() }, t(120))
        .await
        .unwrap();
    assert!(!resolved.is_active());

    let versions = db.notice_versions(n.id).await.unwrap();
    assert_eq!(versions.iter().map(|v| v.version).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(versions[0].text, "We are investigating an internet outage in Utrecht.");
    assert_eq!(versions[1].regions, vec!["Utrecht".to_owned(), "Nieuwegein".to_owned()]);
    assert_eq!(versions[0].author, Some(admin.id));
    assert_eq!(versions[2].author, None);
    assert_eq!(versions[2].state, NoticeState::Resolved);

    let mut draft = new_notice(&[], t(130));
    draft.draft = true;
    let draft = db.create_notice(draft).await.unwrap();
    let active = db.create_notice(new_notice(&[], t(140))).await.unwrap();
    let active_ids: Vec<_> = db.notices(true).await.unwrap().into_iter().map(|n| n.id).collect();
    assert_eq!(active_ids, vec![active.id], "drafts and resolved notices are not active");
    assert_eq!(db.notices(false).await.unwrap().len(), 3);
    let published = db
        .update_notice(
            draft.id,
            NoticeChange { draft: Some(false), approved_by: Some(admin.id), ..Default::default() },
            t(150),
        )
        .await
        .unwrap();
    assert!(published.is_active());
    assert_eq!(db.notice_versions(draft.id).await.unwrap()[1].approved_by, Some(admin.id));

    // A change that waits for approval: one per notice, a newer one replaces it, dropping it says whether it was there.
    assert_eq!(db.notice_proposal(n.id).await.unwrap(), None);
    let proposal = |text: &str, at| webcare_domain::NoticeProposal {
        notice: n.id,
        author: admin.id,
        change: NoticeChange { text: Some(text.to_owned()), ..Default::default() },
        created_at: at,
    };
    db.propose_notice_change(&proposal("eerste", t(200))).await.unwrap();
    db.propose_notice_change(&proposal("tweede", t(210))).await.unwrap();
    assert_eq!(db.notice_proposal(n.id).await.unwrap(), Some(proposal("tweede", t(210))));
    assert_eq!(db.notice_proposal(active.id).await.unwrap(), None, "per notice");
    assert!(db.drop_notice_proposal(n.id).await.unwrap());
    assert!(!db.drop_notice_proposal(n.id).await.unwrap());
    assert_eq!(db.notice_proposal(n.id).await.unwrap(), None);
    assert_eq!(db.notice_versions(n.id).await.unwrap().len(), 3, "a proposal is no version");
}

async fn concurrent_notice_updates_get_consecutive_versions(t_db: &TestDb) {
    let db = t_db.db().clone();
    let n = db.create_notice(new_notice(&[], t(0))).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            // SQLite may answer "busy" under contention; a caller retries transient errors.
            loop {
                match db
                    .update_notice(n.id, NoticeChange { text: Some(format!("update {i}")), ..Default::default() }, t(i))
                    .await
                {
                    Err(e) if e.is_transient() => tokio::task::yield_now().await,
                    other => return other.unwrap().version,
                }
            }
        }));
    }
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap());
    }
    versions.sort();
    assert_eq!(versions, (2..=9).collect::<Vec<_>>());
    assert_eq!(db.notice_versions(n.id).await.unwrap().len(), 9);
}

async fn clusters_hand_their_members_to_a_notice(t_db: &TestDb) {
    let db = t_db.db();
    let c = db
        .create_cluster(NewCluster {
            account: "acme".into(),
            service: Service::Internet,
            region: Some("Utrecht".into()),
            at: t(0),
        })
        .await
        .unwrap();
    assert_eq!(c.state, ClusterState::Open);
    let mut chats = Vec::new();
    for i in 0..3 {
        let chat = db
            .upsert_conversation(
                NewConversation {
                    platform: Platform::Webchat,
                    platform_chat_id: format!("w{i}"),
                    kind: ConversationKind::Private,
                    title: None,
                },
                t(i),
            )
            .await
            .unwrap();
        let language = if i % 2 == 0 { "nl" } else { "en" };
        let sub = Subscription::new(chat.id, None, SubscriptionTarget::Cluster(c.id), t(i)).in_language(language);
        assert!(db.subscribe(&sub).await.unwrap());
        chats.push(chat);
    }
    db.touch_cluster(c.id, 3, t(50)).await.unwrap();
    db.touch_cluster(c.id, 3, t(40)).await.unwrap();
    db.set_cluster_alerted(c.id, 3).await.unwrap();
    let stored = db.cluster(c.id).await.unwrap();
    assert_eq!((stored.members, stored.alerted_at_members, stored.last_at), (3, 3, t(50)));
    assert_eq!(db.open_clusters().await.unwrap().len(), 1);

    let notice = db.create_notice(new_notice(&["Utrecht"], t(60))).await.unwrap();
    // One member had already found the notice by asking again: no second subscription.
    db.subscribe(&Subscription::new(chats[0].id, None, SubscriptionTarget::Notice(notice.id), t(59))).await.unwrap();
    db.close_cluster(c.id, Some(notice.id), t(60)).await.unwrap();
    let subs = db.subscribers(SubscriptionTarget::Notice(notice.id)).await.unwrap();
    assert_eq!(subs.iter().map(|s| s.conversation).collect::<Vec<_>>(), chats.iter().map(|c| c.id).collect::<Vec<_>>());
    // Each member keeps the language they asked in; the one already subscribed keeps that subscription as it was.
    assert_eq!(subs.iter().map(|s| s.language.as_deref()).collect::<Vec<_>>(), [None, Some("en"), Some("nl")]);
    assert!(db.subscribers(SubscriptionTarget::Cluster(c.id)).await.unwrap().is_empty());
    let closed = db.cluster(c.id).await.unwrap();
    assert_eq!((closed.state, closed.notice), (ClusterState::Noticed, Some(notice.id)));
    assert!(db.open_clusters().await.unwrap().is_empty());
    assert!(matches!(db.close_cluster(c.id, None, t(70)).await, Err(StoreError::NotFound { .. })));

    let c2 = db
        .create_cluster(NewCluster { account: "acme".into(), service: Service::Tv, region: None, at: t(80) })
        .await
        .unwrap();
    db.subscribe(&Subscription::new(chats[1].id, None, SubscriptionTarget::Cluster(c2.id), t(80))).await.unwrap();
    db.close_cluster(c2.id, None, t(200)).await.unwrap();
    assert_eq!(db.cluster(c2.id).await.unwrap().state, ClusterState::Expired);
    assert!(db.subscribers(SubscriptionTarget::Cluster(c2.id)).await.unwrap().is_empty());
}

async fn subscriptions_are_unique_and_stop_ends_them(t_db: &TestDb) {
    let db = t_db.db();
    let (who, chat) = customer_and_chat(db, ConversationKind::Private).await;
    let n1 = db.create_notice(new_notice(&[], t(0))).await.unwrap();
    let n2 = db.create_notice(new_notice(&["Gent"], t(0))).await.unwrap();
    assert!(
        db.subscribe(&Subscription::new(chat.id, Some(who.id), SubscriptionTarget::Notice(n1.id), t(1))).await.unwrap()
    );
    assert!(
        !db.subscribe(&Subscription::new(chat.id, Some(who.id), SubscriptionTarget::Notice(n1.id), t(2)))
            .await
            .unwrap()
    );
    assert!(
        db.subscribe(&Subscription::new(chat.id, Some(who.id), SubscriptionTarget::Notice(n2.id), t(3))).await.unwrap()
    );
    let mine = db.subscriptions_of(chat.id).await.unwrap();
    assert_eq!(mine.len(), 2);
    assert_eq!(mine[0].customer, Some(who.id));
    assert_eq!(mine[0].created_at, t(1));
    assert_eq!(db.unsubscribe_all(chat.id).await.unwrap(), 2);
    assert!(db.subscribers(SubscriptionTarget::Notice(n1.id)).await.unwrap().is_empty());
    assert_eq!(db.unsubscribe_all(chat.id).await.unwrap(), 0);
}

async fn tickets_are_found_by_words_name_number_and_customer(t_db: &TestDb) {
    let db = t_db.db();
    // Anna (customer_and_chat) and Bram, each with a ticket; Anna also wrote about her modem in her conversation.
    let (anna, anna_chat) = customer_and_chat(db, ConversationKind::Private).await;
    let bram = db
        .upsert_customer(
            NewCustomer {
                platform: Platform::Discord,
                platform_user_id: "u2".into(),
                display_name: "Bram de Vries".into(),
            },
            t(0),
        )
        .await
        .unwrap();
    let bram_chat = db
        .upsert_conversation(
            NewConversation {
                platform: Platform::Discord,
                platform_chat_id: "d2".into(),
                kind: ConversationKind::Private,
                title: None,
            },
            t(0),
        )
        .await
        .unwrap();
    let a = db.create_ticket(new_ticket(anna_chat.id, anna.id, "Factuur 100% te hoog", None, t(1))).await.unwrap();
    let b = db.create_ticket(new_ticket(bram_chat.id, bram.id, "Verhuizing naar Gent", None, t(1))).await.unwrap();
    db.insert_inbound(inbound(&anna_chat, &anna, "c1/9", "en mijn Modem knippert rood")).await.unwrap();
    let find = |text: &str| {
        let filter = webcare_domain::TicketFilter { text: Some(text.to_owned()), ..Default::default() };
        async move { db.find_tickets(&filter).await.unwrap().into_iter().map(|t| t.id).collect::<Vec<_>>() }
    };
    assert_eq!(find("FACTUUR").await, vec![a.id], "the subject, ignoring case");
    assert_eq!(find("de vries").await, vec![b.id], "the customer's name");
    assert_eq!(find("modem knippert").await, vec![a.id], "what the customer wrote");
    assert_eq!(find(&format!("#{}", b.id)).await, vec![b.id], "the number");
    assert_eq!(find("100%").await, vec![a.id], "LIKE's characters are taken literally");
    assert_eq!(find("1_0").await, Vec::<webcare_domain::TicketId>::new());
    assert_eq!(find("storing").await, Vec::<webcare_domain::TicketId>::new());
    let both = webcare_domain::TicketFilter {
        text: Some("e".into()),
        platform: Some(Platform::Discord),
        ..Default::default()
    };
    assert_eq!(db.find_tickets(&both).await.unwrap().into_iter().map(|t| t.id).collect::<Vec<_>>(), vec![b.id]);
    let annas = webcare_domain::TicketFilter { customer: Some(anna.id), ..Default::default() };
    assert_eq!(db.find_tickets(&annas).await.unwrap().into_iter().map(|t| t.id).collect::<Vec<_>>(), vec![a.id]);
}

async fn the_work_waiting_is_counted(t_db: &TestDb) {
    let db = t_db.db();
    let empty = db.work_counts(t(100)).await.unwrap();
    assert_eq!((empty.undecided, empty.overdue, empty.active_notices, empty.open_clusters), (0, 0, 0, 0));
    assert_eq!(empty.tickets.len(), TicketState::ALL.len(), "every state, 0 included");
    let (who, chat) = customer_and_chat(db, ConversationKind::Private).await;
    let m = db.insert_inbound(inbound(&chat, &who, "c1/1", "storing?")).await.unwrap().into_inner();
    db.insert_inbound(inbound(&chat, &who, "c1/2", "nog steeds")).await.unwrap();
    db.set_decision(m.id, &serde_json::json!({"action": "ignore"})).await.unwrap();
    for (subject, due) in [("late", Some(t(50))), ("later", Some(t(500))), ("undated", None)] {
        db.create_ticket(new_ticket(chat.id, who.id, subject, due, t(1))).await.unwrap();
    }
    db.create_notice(new_notice(&["Utrecht"], t(1))).await.unwrap();
    let mut draft = new_notice(&["Zeist"], t(1));
    draft.draft = true;
    db.create_notice(draft).await.unwrap();
    db.create_cluster(NewCluster { account: "kpn".into(), service: Service::Internet, region: None, at: t(1) })
        .await
        .unwrap();
    let w = db.work_counts(t(100)).await.unwrap();
    assert_eq!((w.undecided, w.overdue, w.active_notices, w.open_clusters), (1, 1, 1, 1), "{w:?}");
    assert!(w.tickets.contains(&(TicketState::New, 3)), "{w:?}");
}

async fn tickets_keep_their_history(t_db: &TestDb) {
    let db = t_db.db();
    let (who, chat) = customer_and_chat(db, ConversationKind::Private).await;
    let agent = db
        .create_agent(NewAgent { name: "sam".into(), role: Role::Agent, password_hash: None, at: t(0) })
        .await
        .unwrap();
    assert!(db.open_ticket(chat.id, who.id).await.unwrap().is_none());
    let late = db.create_ticket(new_ticket(chat.id, who.id, "late", Some(t(9000)), t(1))).await.unwrap();
    let soon = db.create_ticket(new_ticket(chat.id, who.id, "soon", Some(t(100)), t(1))).await.unwrap();
    let undated = db.create_ticket(new_ticket(chat.id, who.id, "undated", None, t(1))).await.unwrap();
    assert_eq!(soon.state, TicketState::New);
    let queue: Vec<_> = db.tickets(&[]).await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(queue, vec![soon.id, late.id, undated.id], "the queue is sorted by due time");
    assert_eq!(db.open_ticket(chat.id, who.id).await.unwrap().unwrap().id, undated.id);

    db.add_ticket_event(soon.id, TicketEventKind::Note, Some(agent.id), "called the customer", t(5)).await.unwrap();
    let solved = db.set_ticket_state(soon.id, TicketState::Solved, Some(agent.id), t(6)).await.unwrap();
    assert_eq!((solved.state, solved.updated_at), (TicketState::Solved, t(6)));
    assert_eq!(solved.version, soon.version + 1, "a change of state is a new version (the console's stale check)");
    let events = db.ticket_events(soon.id).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![TicketEventKind::Created, TicketEventKind::Note, TicketEventKind::StateChanged]);
    assert_eq!(events[1].actor, Some(agent.id));
    assert_eq!(events[1].body, "called the customer");
    assert_eq!(events[2].body, "solved");

    let solved_only: Vec<_> = db.tickets(&[TicketState::Solved]).await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(solved_only, vec![soon.id]);
    let open: Vec<_> =
        db.tickets(&[TicketState::New, TicketState::Open]).await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(open, vec![late.id, undated.id]);
    for id in [late.id, undated.id, soon.id] {
        db.set_ticket_state(id, TicketState::Closed, None, t(7)).await.unwrap();
    }
    assert!(db.open_ticket(chat.id, who.id).await.unwrap().is_none());
}

async fn agents_have_unique_names_and_hashed_tokens(t_db: &TestDb) {
    let db = t_db.db();
    let a = db
        .create_agent(NewAgent {
            name: "ria".into(),
            role: Role::Admin,
            password_hash: Some("$argon2id$v=19$...".into()),
            at: t(0),
        })
        .await
        .unwrap();
    assert_eq!(a.role, Role::Admin);
    let dup = db.create_agent(NewAgent { name: "ria".into(), role: Role::Agent, password_hash: None, at: t(1) }).await;
    assert!(matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("ria")), "{dup:?}");
    db.add_api_token(a.id, "hash-1", t(2)).await.unwrap();
    assert_eq!(db.agent_by_token_hash("hash-1").await.unwrap().unwrap().id, a.id);
    assert!(db.agent_by_token_hash("hash-2").await.unwrap().is_none());
    assert!(matches!(db.add_api_token(a.id, "hash-1", t(3)).await, Err(StoreError::Conflict(_))));
    assert_eq!(db.agent_by_name("ria").await.unwrap().unwrap().password_hash.as_deref(), Some("$argon2id$v=19$..."));
    assert!(db.agent_by_name("nobody").await.unwrap().is_none());
    assert_eq!(db.agents().await.unwrap().len(), 1);
    assert_eq!(db.agent(a.id).await.unwrap(), a);
}

async fn chat(db: &Db, id: &str) -> webcare_domain::ConversationId {
    db.upsert_conversation(
        NewConversation {
            platform: Platform::Telegram,
            platform_chat_id: id.into(),
            kind: ConversationKind::Private,
            title: None,
        },
        t(0),
    )
    .await
    .unwrap()
    .id
}

async fn outbox_keys_are_idempotent(t_db: &TestDb) {
    let db = t_db.db();
    let c = chat(db, "o1").await;
    let mut new = NewOutbox::message(c, "Notice v1", "notice:1:v1:conv:1", Priority::BROADCAST, t(0));
    new.extra = serde_json::json!({"buttons": [["Something else? Talk to a person", "ticket"]]});
    let first = db.enqueue(new.clone(), t(0)).await.unwrap();
    assert!(first.is_new());
    let item = first.get();
    assert_eq!((item.state, item.attempts, item.priority), (OutboxState::Pending, 0, Priority::BROADCAST));
    assert_eq!(item.extra, new.extra);
    let mut again = new.clone();
    again.body = "changed".into();
    let second = db.enqueue(again, t(5)).await.unwrap();
    assert!(!second.is_new());
    assert_eq!(second.get(), item, "the second enqueue changes nothing");
    assert_eq!(db.outbox_counts().await.unwrap(), vec![(OutboxState::Pending, 1)]);
    assert_eq!(db.outbox_by_key("notice:1:v1:conv:1").await.unwrap(), Some(item.clone()));
    assert_eq!(db.outbox_by_key("notice:1:v2:conv:1").await.unwrap(), None);
}

async fn outbox_claims_by_priority_and_due_time(t_db: &TestDb) {
    let db = t_db.db();
    let mut ids = BTreeMap::new();
    for (key, priority, due) in [
        ("broadcast-1", Priority::BROADCAST, 0),
        ("broadcast-2", Priority::BROADCAST, 1),
        ("reply", Priority::AGENT_REPLY, 2),
        ("later", Priority::AGENT_REPLY, 100),
        ("auto", Priority::AUTOMATIC, 3),
    ] {
        // A chat each: rows of one chat wait for each other (see the next test).
        let c = chat(db, &format!("o2-{key}")).await;
        let mut new = NewOutbox::message(c, key, key, priority, t(due));
        new.not_before = t(due);
        ids.insert(key, db.enqueue(new, t(0)).await.unwrap().into_inner().id);
    }
    let claimed = db.claim_outbox("w1", t(10), Duration::from_secs(3600), 3).await.unwrap();
    let keys: Vec<_> = claimed.iter().map(|i| i.idempotency_key.as_str()).collect();
    assert_eq!(keys, vec!["reply", "auto", "broadcast-1"], "highest priority first, then the earliest due");
    for item in &claimed {
        assert_eq!(item.state, OutboxState::Sending);
        assert_eq!(item.claimed_by.as_deref(), Some("w1"));
        assert_eq!(item.attempts, 1);
        assert_eq!(item.lease_until, Some(t(3610)));
    }
    let rest = db.claim_outbox("w2", t(10), Duration::from_secs(3600), 10).await.unwrap();
    let keys: Vec<_> = rest.iter().map(|i| i.idempotency_key.as_str()).collect();
    assert_eq!(keys, vec!["broadcast-2"], "rows not yet due and rows claimed by others are left alone");
    assert!(db.claim_outbox("w2", t(11), Duration::from_secs(30), 10).await.unwrap().is_empty());
    let later = db.claim_outbox("w2", t(100), Duration::from_secs(30), 10).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].id, ids["later"]);
}

async fn outbox_marks_need_the_claim(t_db: &TestDb) {
    let db = t_db.db();
    let c = chat(db, "o3").await;
    for key in ["a", "b", "c", "d"] {
        let c = chat(db, &format!("o3-{key}")).await;
        db.enqueue(NewOutbox::message(c, key, key, Priority::AUTOMATIC, t(0)), t(0)).await.unwrap();
    }
    let items = db.claim_outbox("w1", t(1), Duration::from_secs(3600), 10).await.unwrap();
    let [a, b, cc, d] = items.as_slice() else { panic!("expected four rows, got {items:?}") };

    assert!(!db.mark_sent(a.id, "intruder", Some("m1"), t(2)).await.unwrap(), "only the claimant marks a row");
    assert!(db.mark_sent(a.id, "w1", Some("m1"), t(2)).await.unwrap());
    assert!(!db.mark_sent(a.id, "w1", Some("m1"), t(3)).await.unwrap(), "a sent row stays sent once");
    let sent = db.outbox_item(a.id).await.unwrap();
    assert_eq!(
        (sent.state, sent.platform_message_id.as_deref(), sent.sent_at),
        (OutboxState::Sent, Some("m1"), Some(t(2)))
    );

    assert!(db.mark_retry(b.id, "w1", t(60), "429: retry after 59").await.unwrap());
    let retry = db.outbox_item(b.id).await.unwrap();
    assert_eq!((retry.state, retry.next_attempt_at), (OutboxState::Pending, t(60)));
    assert_eq!(retry.last_error.as_deref(), Some("429: retry after 59"));
    assert!(retry.claimed_by.is_none());
    assert!(db.claim_outbox("w1", t(59), Duration::from_secs(30), 10).await.unwrap().is_empty());
    let again = db.claim_outbox("w1", t(60), Duration::from_secs(30), 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts, 2);

    assert!(db.mark_failed(cc.id, "w1", "403: bot was blocked by the user").await.unwrap());
    assert_eq!(db.outbox_item(cc.id).await.unwrap().state, OutboxState::Failed);
    assert!(!db.cancel_outbox(d.id).await.unwrap(), "a claimed row is not cancelled under its sender");

    let e = db.enqueue(NewOutbox::message(c, "e", "e", Priority::BROADCAST, t(0)), t(0)).await.unwrap().into_inner();
    assert!(db.cancel_outbox(e.id).await.unwrap());
    assert!(db.claim_outbox("w1", t(1000), Duration::from_secs(30), 10).await.unwrap().iter().all(|i| i.id != e.id));

    let counts: BTreeMap<_, _> = db.outbox_counts().await.unwrap().into_iter().map(|(s, n)| (s.as_str(), n)).collect();
    assert_eq!(counts, BTreeMap::from([("cancelled", 1), ("failed", 1), ("sending", 2), ("sent", 1)]));
}

async fn outbox_lapsed_leases_are_claimed_again(t_db: &TestDb) {
    let db = t_db.db();
    let c = chat(db, "o4").await;
    let item = db.enqueue(NewOutbox::message(c, "x", "x", Priority::AUTOMATIC, t(0)), t(0)).await.unwrap().into_inner();
    let claimed = db.claim_outbox("crashed", t(1), Duration::from_secs(30), 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // The worker dies without marking; until its lease lapses nobody else may take the row.
    assert!(db.claim_outbox("w2", t(30), Duration::from_secs(30), 10).await.unwrap().is_empty());
    let taken = db.claim_outbox("w2", t(31), Duration::from_secs(30), 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!((taken[0].id, taken[0].attempts, taken[0].claimed_by.as_deref()), (item.id, 2, Some("w2")));
    assert!(!db.mark_sent(item.id, "crashed", None, t(32)).await.unwrap(), "the old claim is void");
    assert!(db.mark_sent(item.id, "w2", None, t(32)).await.unwrap());
}

async fn outbox_concurrent_claimers_never_share_a_row(t_db: &TestDb) {
    let db = t_db.db();
    const ROWS: usize = 300;
    for i in 0..ROWS {
        let key = format!("row-{i}");
        let c = chat(db, &format!("o5-{i}")).await;
        db.enqueue(NewOutbox::message(c, &key, &key, Priority::BROADCAST, t(0)), t(0)).await.unwrap();
    }
    // Two pools on one database, as two webcare processes would have, with several claimers each.
    let pools = [t_db.another().await, t_db.another().await];
    let mut tasks = Vec::new();
    for (p, pool) in pools.iter().enumerate() {
        for w in 0..3 {
            let pool = pool.clone();
            let worker = format!("p{p}w{w}");
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    match pool.claim_outbox(&worker, t(1), Duration::from_secs(300), 7).await {
                        Ok(batch) if batch.is_empty() => return mine,
                        Ok(batch) => {
                            for item in batch {
                                assert!(pool.mark_sent(item.id, &worker, None, t(2)).await.unwrap());
                                mine.push(item.id);
                            }
                        }
                        Err(e) if e.is_transient() => tokio::task::yield_now().await,
                        Err(e) => panic!("{e}"),
                    }
                }
            }));
        }
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    let distinct: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), ROWS, "every row claimed once");
    assert_eq!(distinct.len(), ROWS, "no row claimed twice");
    assert_eq!(db.outbox_counts().await.unwrap(), vec![(OutboxState::Sent, ROWS as i64)]);
}

/// One chat's rows of one priority go out one at a time, in the order they were queued, whoever claims them; a
/// person's answer passes a broadcast queued before it, and other chats do not wait.
async fn outbox_rows_of_one_chat_go_one_at_a_time_in_order(t_db: &TestDb) {
    let db = t_db.db();
    let (c, other) = (chat(db, "o6").await, chat(db, "o6-other").await);
    let mut ids = BTreeMap::new();
    for (conversation, key, priority) in [
        (c, "broadcast-1", Priority::BROADCAST),
        (c, "answer-1", Priority::AUTOMATIC),
        (c, "answer-2", Priority::AUTOMATIC),
        (c, "broadcast-2", Priority::BROADCAST),
        (other, "elsewhere", Priority::BROADCAST),
    ] {
        ids.insert(
            key,
            db.enqueue(NewOutbox::message(conversation, key, key, priority, t(0)), t(0)).await.unwrap().into_inner().id,
        );
    }
    let keys = |items: Vec<webcare_domain::OutboxItem>| -> Vec<String> {
        items.into_iter().map(|i| i.idempotency_key).collect()
    };
    let lease = Duration::from_secs(30);
    assert_eq!(keys(db.claim_outbox("w1", t(1), lease, 10).await.unwrap()), ["answer-1", "broadcast-1", "elsewhere"]);
    assert!(db.claim_outbox("w2", t(1), lease, 10).await.unwrap().is_empty(), "the rest wait behind those being sent");
    // The first answer is held (a 429): the second does not overtake it, here or on another instance.
    assert!(db.mark_retry(ids["answer-1"], "w1", t(20), "429").await.unwrap());
    assert!(db.mark_sent(ids["broadcast-1"], "w1", None, t(2)).await.unwrap());
    assert!(db.mark_sent(ids["elsewhere"], "w1", None, t(2)).await.unwrap());
    assert!(db.claim_outbox("w2", t(2), lease, 10).await.unwrap().is_empty(), "broadcast-2 waits for the answers too");
    assert_eq!(keys(db.claim_outbox("w2", t(20), lease, 10).await.unwrap()), ["answer-1"]);
    // A claim that lapses (its worker died) is taken over, and what follows still waits for it.
    assert!(db.claim_outbox("w3", t(49), lease, 10).await.unwrap().is_empty());
    assert_eq!(keys(db.claim_outbox("w3", t(50), lease, 10).await.unwrap()), ["answer-1"]);
    assert!(db.mark_sent(ids["answer-1"], "w3", None, t(51)).await.unwrap());
    assert_eq!(keys(db.claim_outbox("w1", t(51), lease, 10).await.unwrap()), ["answer-2"]);
    assert!(db.mark_failed(ids["answer-2"], "w1", "403").await.unwrap());
    assert_eq!(
        keys(db.claim_outbox("w2", t(52), lease, 10).await.unwrap()),
        ["broadcast-2"],
        "a failed row holds nothing up"
    );
    assert!(db.mark_sent(ids["broadcast-2"], "w2", None, t(53)).await.unwrap());

    // Many claimers in two processes over three chats: never two rows of one chat at once, each chat in order.
    let chats = [chat(db, "o6-a").await, chat(db, "o6-b").await, chat(db, "o6-c").await];
    const PER_CHAT: usize = 40;
    for i in 0..PER_CHAT {
        for (n, c) in chats.iter().enumerate() {
            let key = format!("o6-{n}-{i:03}");
            db.enqueue(NewOutbox::message(*c, &key, &key, Priority::BROADCAST, t(0)), t(0)).await.unwrap();
        }
    }
    let in_flight = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let pools = [t_db.another().await, t_db.another().await];
    let mut tasks = Vec::new();
    for (p, pool) in pools.iter().enumerate() {
        for w in 0..3 {
            let (pool, in_flight, order) = (pool.clone(), in_flight.clone(), order.clone());
            let worker = format!("p{p}w{w}");
            tasks.push(tokio::spawn(async move {
                let mut idle = 0;
                while idle < 50 {
                    let batch = match pool.claim_outbox(&worker, t(100), Duration::from_secs(300), 4).await {
                        Ok(batch) => batch,
                        Err(e) if e.is_transient() => Vec::new(),
                        Err(e) => panic!("{e}"),
                    };
                    if batch.is_empty() {
                        idle += 1;
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        continue;
                    }
                    idle = 0;
                    for item in &batch {
                        assert!(in_flight.lock().unwrap().insert(item.conversation), "two rows of one chat at once");
                        order.lock().unwrap().push((item.conversation, item.idempotency_key.clone()));
                    }
                    tokio::task::yield_now().await;
                    for item in batch {
                        in_flight.lock().unwrap().remove(&item.conversation);
                        assert!(pool.mark_sent(item.id, &worker, None, t(101)).await.unwrap());
                    }
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    assert_eq!(order.len(), 3 * PER_CHAT, "every row once");
    for c in chats {
        let sent: Vec<&String> = order.iter().filter(|(chat, _)| *chat == c).map(|(_, key)| key).collect();
        let mut sorted = sent.clone();
        sorted.sort();
        assert_eq!(sent, sorted, "one chat's rows in the order they were queued");
    }
}

async fn lexicon_changes_are_one_per_term_and_kept_in_order(t_db: &TestDb) {
    use webcare_domain::TermEdit;
    let db = t_db.db();
    assert!(db.lexicon_changes().await.unwrap().is_empty());
    let ria = db.create_agent(NewAgent { name: "ria".into(), role: Role::Admin, password_hash: None, at: t(0) }).await;
    let ria = ria.unwrap().id;
    let added = db.put_lexicon_change("nl", "outage", "glasvezel kapot", TermEdit::Add, Some(ria), t(1)).await.unwrap();
    assert_eq!(
        (added.language.as_str(), added.group.as_str(), added.term.as_str(), added.edit, added.author),
        ("nl", "outage", "glasvezel kapot", TermEdit::Add, Some(ria))
    );
    let removed = db.put_lexicon_change("en", "outage", "down", TermEdit::Remove, None, t(2)).await.unwrap();
    // The same term in the same group again replaces the change, under its id.
    let again = db.put_lexicon_change("nl", "outage", "glasvezel kapot", TermEdit::Remove, None, t(3)).await.unwrap();
    assert_eq!((again.id, again.edit, again.author, again.created_at), (added.id, TermEdit::Remove, None, t(3)));
    // The same term in another group or language is a change of its own.
    db.put_lexicon_change("en", "outage-degraded", "down", TermEdit::Add, None, t(4)).await.unwrap();
    let all = db.lexicon_changes().await.unwrap();
    let listed: Vec<_> = all.iter().map(|c| (c.language.as_str(), c.group.as_str(), c.term.as_str(), c.edit)).collect();
    assert_eq!(
        listed,
        [
            ("en", "outage", "down", TermEdit::Remove),
            ("nl", "outage", "glasvezel kapot", TermEdit::Remove),
            ("en", "outage-degraded", "down", TermEdit::Add),
        ],
        "in the order they were last made"
    );
    assert!(db.delete_lexicon_change(removed.id).await.unwrap());
    assert!(!db.delete_lexicon_change(removed.id).await.unwrap(), "gone once");
    assert_eq!(db.lexicon_changes().await.unwrap().len(), 2);
}

async fn missing_rows_are_not_found(t_db: &TestDb) {
    let db = t_db.db();
    let e = db.ticket(webcare_domain::TicketId(4242)).await.unwrap_err();
    assert_eq!(e.to_string(), "ticket 4242 not found");
    assert!(matches!(db.notice(webcare_domain::NoticeId(1)).await, Err(StoreError::NotFound { what: "notice", .. })));
    assert!(matches!(
        db.update_notice(webcare_domain::NoticeId(1), NoticeChange::default(), t(0)).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(db.agent(AgentId(9)).await, Err(StoreError::NotFound { .. })));
    assert!(matches!(
        db.set_ticket_state(webcare_domain::TicketId(1), TicketState::Open, None, t(0)).await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn reload_requests_count_up_per_name(t_db: &TestDb) {
    let db = t_db.db();
    assert_eq!(db.reload_generation("bridge-data").await.unwrap(), 0, "none requested yet");
    assert_eq!(db.request_reload("bridge-data", "ada", t(1)).await.unwrap(), 1);
    assert_eq!(db.request_reload("bridge-data", "command line", t(2)).await.unwrap(), 2);
    assert_eq!(db.reload_generation("bridge-data").await.unwrap(), 2);
    assert_eq!(db.reload_generation("something-else").await.unwrap(), 0);
}

async fn leases_have_one_holder_and_pass_on_when_they_run_out(t_db: &TestDb) {
    let db = t_db.db();
    assert!(db.acquire_lease("telegram-poller", "a", t(0), t(10)).await.unwrap());
    assert!(!db.acquire_lease("telegram-poller", "b", t(5), t(15)).await.unwrap(), "held by a");
    assert!(db.acquire_lease("telegram-poller", "a", t(8), t(18)).await.unwrap(), "a renews");
    assert!(!db.acquire_lease("telegram-poller", "b", t(17), t(27)).await.unwrap());
    assert!(db.acquire_lease("other-job", "b", t(17), t(27)).await.unwrap(), "leases are per name");
    assert!(db.acquire_lease("telegram-poller", "b", t(18), t(28)).await.unwrap(), "b takes over when a's runs out");
    assert!(!db.acquire_lease("telegram-poller", "a", t(19), t(29)).await.unwrap());
    db.release_lease("telegram-poller", "a").await.unwrap();
    assert!(!db.acquire_lease("telegram-poller", "a", t(20), t(30)).await.unwrap(), "only the holder releases");
    db.release_lease("telegram-poller", "b").await.unwrap();
    assert!(db.acquire_lease("telegram-poller", "a", t(21), t(31)).await.unwrap());

    // Many contenders at once from two pools: exactly one wins.
    let pools = [t_db.another().await, t_db.another().await];
    let mut tasks = Vec::new();
    for i in 0..10 {
        let pool = pools[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            loop {
                match pool.acquire_lease("race", &format!("p{i}"), t(100), t(200)).await {
                    Err(e) if e.is_transient() => tokio::task::yield_now().await,
                    other => return other.unwrap(),
                }
            }
        }));
    }
    let mut winners = 0;
    for task in tasks {
        winners += usize::from(task.await.unwrap());
    }
    assert_eq!(winners, 1);
}

async fn outbox_batches_are_idempotent_too(t_db: &TestDb) {
    let db = t_db.db();
    let c = chat(db, "b1").await;
    let rows: Vec<NewOutbox> = (0..250)
        .map(|i| {
            NewOutbox::message(c, format!("v1 to {i}"), format!("notice:1:v1:conv:{i}"), Priority::BROADCAST, t(0))
        })
        .collect();
    assert_eq!(db.enqueue_many(&rows, t(0)).await.unwrap(), 250);
    assert_eq!(db.enqueue_many(&rows[100..], t(1)).await.unwrap(), 0, "a repeated batch queues nothing");
    let mut more = rows[240..].to_vec();
    more.push(NewOutbox::message(c, "new", "notice:1:v1:conv:999", Priority::BROADCAST, t(0)));
    assert_eq!(db.enqueue_many(&more, t(2)).await.unwrap(), 1);
    assert_eq!(db.enqueue_many(&[], t(3)).await.unwrap(), 0);
    assert_eq!(db.outbox_counts().await.unwrap(), vec![(OutboxState::Pending, 251)]);
}

async fn a_unit_of_work_commits_all_or_nothing(t_db: &TestDb) {
    let db = t_db.db();
    let (customer, chat) = customer_and_chat(db, ConversationKind::Private).await;
    let count = || async { db.inbound_after(webcare_domain::InboundId(0), 100).await.unwrap().len() };

    // Committed: everything done through the unit is there at once, including a transaction of its own inside it
    // (a ticket with its events), and the unit read its own writes before.
    let unit = db.begin().await.unwrap();
    let stored = unit.insert_inbound(inbound(&chat, &customer, "m1", "Geen internet")).await.unwrap();
    let Inserted::New(m1) = stored else { panic!("a new message") };
    assert_eq!(unit.inbound(m1.id).await.unwrap().text, "Geen internet", "a unit reads its own writes");
    let ticket = unit
        .create_ticket(NewTicket {
            conversation: chat.id,
            customer: customer.id,
            subject: "Geen internet".into(),
            priority: 2,
            category: "outage".into(),
            due_at: None,
            first_response_due_at: None,
            resolution_due_at: None,
            tags: Vec::new(),
            at: t(1),
        })
        .await
        .unwrap();
    unit.add_ticket_event(ticket.id, TicketEventKind::CustomerMessage, None, "Geen internet", t(1)).await.unwrap();
    unit.commit().await.unwrap();
    assert_eq!(count().await, 1);
    assert_eq!(db.ticket_events(ticket.id).await.unwrap().len(), 2);
    assert!(unit.inbound(m1.id).await.is_err(), "a committed unit is spent");

    // Rolled back, or dropped without a commit: nothing of it stays.
    let unit = db.begin().await.unwrap();
    unit.insert_inbound(inbound(&chat, &customer, "m2", "Storing?")).await.unwrap();
    unit.set_decision(m1.id, &serde_json::json!({"action": "ticket"})).await.unwrap();
    unit.rollback().await.unwrap();
    let unit = db.begin().await.unwrap();
    unit.insert_inbound(inbound(&chat, &customer, "m3", "Nog steeds storing")).await.unwrap();
    drop(unit);
    assert_eq!(count().await, 1);
    assert!(db.inbound(m1.id).await.unwrap().decision.is_none());

    // A unit does not block readers, and the next unit starts once one ends.
    let unit = db.begin().await.unwrap();
    unit.insert_inbound(inbound(&chat, &customer, "m4", "Weer storing")).await.unwrap();
    assert_eq!(count().await, 1, "others see a unit's writes only once it commits");
    unit.commit().await.unwrap();
    assert_eq!(count().await, 2);
}

async fn a_unit_goes_back_to_its_mark(t_db: &TestDb) {
    let db = t_db.db();
    let (customer, chat) = customer_and_chat(db, ConversationKind::Private).await;
    let unit = db.begin().await.unwrap();
    let Inserted::New(m1) = unit.insert_inbound(inbound(&chat, &customer, "m1", "Geen internet")).await.unwrap() else {
        panic!("a new message")
    };
    unit.mark().await.unwrap();
    let Inserted::New(m2) = unit.insert_inbound(inbound(&chat, &customer, "m2", "Storing?")).await.unwrap() else {
        panic!("a new message")
    };
    unit.set_decision(m1.id, &serde_json::json!({"action": "ticket"})).await.unwrap();
    // A statement that fails inside the unit (a ticket for a chat that does not exist): on PostgreSQL it spoils
    // the transaction until the unit goes back to its mark.
    let orphan = NewTicket {
        conversation: webcare_domain::ConversationId(999_999),
        customer: customer.id,
        subject: "x".into(),
        priority: 2,
        category: "other".into(),
        due_at: None,
        first_response_due_at: None,
        resolution_due_at: None,
        tags: Vec::new(),
        at: t(1),
    };
    assert!(unit.create_ticket(orphan).await.is_err());
    unit.rollback_to_mark().await.unwrap();
    assert!(unit.inbound(m1.id).await.unwrap().decision.is_none(), "the work after the mark is undone");
    assert!(unit.inbound(m2.id).await.is_err());
    // The mark stays: work after it can be undone again, and what came before it is committed.
    unit.set_decision(m1.id, &serde_json::json!({"action": "ignore"})).await.unwrap();
    unit.rollback_to_mark().await.unwrap();
    unit.commit().await.unwrap();
    let stored = db.inbound_after(webcare_domain::InboundId(0), 10).await.unwrap();
    assert_eq!(stored.iter().map(|m| m.id).collect::<Vec<_>>(), vec![m1.id]);
    assert!(stored[0].decision.is_none());
}

async fn batches_store_like_one_call_after_another(t_db: &TestDb) {
    let db = t_db.db();
    let (anna, chat) = customer_and_chat(db, ConversationKind::Private).await;
    let customer = |id: &str, name: &str| NewCustomer {
        platform: Platform::Telegram,
        platform_user_id: id.into(),
        display_name: name.into(),
    };
    let customers = db
        .upsert_customers(&[customer("u2", "Bo"), customer("u1", "Anna B"), customer("u2", "Bo C")], t(5))
        .await
        .unwrap();
    assert_eq!(customers[1].id, anna.id, "a known user keeps the customer");
    assert_eq!(customers[0].id, customers[2].id, "the same user twice is one customer");
    assert_eq!((customers[0].display_name.as_str(), customers[1].display_name.as_str()), ("Bo C", "Anna B"));
    assert!(db.upsert_customers(&[], t(5)).await.unwrap().is_empty());
    // Rows already as given are read, not written; mixed with new and changed ones, each comes back in its place.
    let again = db
        .upsert_customers(&[customer("u3", "Cas"), customer("u1", "Anna B"), customer("u2", "Bo D")], t(6))
        .await
        .unwrap();
    assert_eq!((again[1].id, again[1].display_name.as_str()), (anna.id, "Anna B"));
    assert_eq!((again[2].id, again[2].display_name.as_str()), (customers[0].id, "Bo D"));
    assert!(again[0].id != anna.id && again[0].id != customers[0].id && again[0].display_name == "Cas");
    let unchanged = db.upsert_customers(&[customer("u1", "Anna B"), customer("u3", "Cas")], t(7)).await.unwrap();
    assert_eq!(unchanged, vec![again[1].clone(), again[0].clone()], "unchanged rows come back as stored");

    let conversation = |id: &str, title: Option<&str>| NewConversation {
        platform: Platform::Telegram,
        platform_chat_id: id.into(),
        kind: ConversationKind::Public,
        title: title.map(Into::into),
    };
    let chats = db
        .upsert_conversations(
            &[conversation("g1", Some("Buurt")), conversation("c1", None), conversation("g1", None)],
            t(5),
        )
        .await
        .unwrap();
    assert_eq!(chats[1].id, chat.id);
    assert_eq!(chats[1].title.as_deref(), Some("Anna"), "a missing title keeps the stored one");
    assert_eq!((chats[0].id, chats[0].title.as_deref()), (chats[2].id, Some("Buurt")));
    assert_eq!(chats[0].kind, ConversationKind::Public);
    let again = db
        .upsert_conversations(
            &[conversation("g2", None), conversation("g1", Some("Buurt")), conversation("c1", Some("Anna"))],
            t(6),
        )
        .await
        .unwrap();
    assert_eq!((again[1].id, again[1].title.as_deref()), (chats[0].id, Some("Buurt")), "unchanged, read back");
    assert_eq!((again[2].id, again[2].title.as_deref()), (chat.id, Some("Anna")));
    assert!(again[0].id != chat.id && again[0].id != chats[0].id && again[0].title.is_none());
    let renamed = db.upsert_conversations(&[conversation("g1", Some("Straat"))], t(7)).await.unwrap();
    assert_eq!((renamed[0].id, renamed[0].title.as_deref()), (chats[0].id, Some("Straat")));

    let Inserted::New(before) = db.insert_inbound(inbound(&chat, &anna, "m1", "eerder")).await.unwrap() else {
        panic!("new")
    };
    // A time finer than the stored millisecond comes back as stored.
    let mut third = inbound(&chat, &anna, "m3", "twee");
    third.received_at = t(10) + chrono::Duration::microseconds(1_500);
    third.place = Some("Stationsplein, Utrecht".into());
    third.language = Some("en".into());
    let stored = db
        .insert_inbound_many(&[
            inbound(&chat, &anna, "m2", "een"),
            inbound(&chat, &anna, "m1", "eerder, opnieuw bezorgd"),
            third,
            inbound(&chat, &anna, "m2", "een, twee keer in een batch"),
        ])
        .await
        .unwrap();
    let (m2, m3) = match (&stored[0], &stored[2]) {
        (Inserted::New(a), Inserted::New(b)) => (a.clone(), b.clone()),
        other => panic!("new messages: {other:?}"),
    };
    assert!(before.id < m2.id && m2.id < m3.id, "ids follow the order given");
    assert_eq!(db.inbound(m2.id).await.unwrap(), m2, "a new message is given back as it is stored");
    assert_eq!(db.inbound(m3.id).await.unwrap(), m3);
    assert_eq!(m3.place.as_deref(), Some("Stationsplein, Utrecht"), "a place hint is stored with its message");
    assert_eq!((m3.language.as_deref(), m2.language.as_deref()), (Some("en"), None), "so is the platform's language");
    assert!(matches!(&stored[1], Inserted::Existing(m) if m.id == before.id && m.text == "eerder"));
    assert!(matches!(&stored[3], Inserted::Existing(m) if m.id == m2.id && m.text == "een"));
    assert_eq!(db.inbound_after(webcare_domain::InboundId(0), 10).await.unwrap().len(), 3);

    let decided = [(m2.id, r#"{"action":"ticket"}"#.to_owned()), (m3.id, r#"{"action":"ignore"}"#.to_owned())];
    db.set_decisions(&decided).await.unwrap();
    assert_eq!(db.inbound(m2.id).await.unwrap().decision.unwrap()["action"], "ticket");
    assert_eq!(db.inbound(m3.id).await.unwrap().decision.unwrap()["action"], "ignore");
    assert!(db.inbound(before.id).await.unwrap().decision.is_none());
    let missing = [(m2.id, "{}".to_owned()), (webcare_domain::InboundId(999_999), "{}".to_owned())];
    assert!(matches!(db.set_decisions(&missing).await, Err(StoreError::NotFound { .. })));
}

async fn batch_effects_store_like_one_call_after_another(t_db: &TestDb) {
    use webcare_domain::{ClusterId, CreatedTicket, NewTicketEvent, OutageCluster, TicketRef, TicketWrites};
    let db = t_db.db();
    let (anna, chat) = customer_and_chat(db, ConversationKind::Private).await;
    let other = self::chat(db, "other").await;

    // Clusters: one statement; a cluster given twice is saved as its last.
    let cluster = |id: i64, members: i64, state: ClusterState| OutageCluster {
        id: ClusterId(id),
        account: "acme".into(),
        service: Service::Internet,
        region: Some("Utrecht".into()),
        state,
        members,
        alerted_at_members: 0,
        notice: None,
        first_at: t(1),
        last_at: t(members),
    };
    db.save_clusters(&[cluster(70, 1, ClusterState::Open), cluster(71, 1, ClusterState::Open)]).await.unwrap();
    db.save_clusters(&[cluster(70, 2, ClusterState::Open), cluster(70, 3, ClusterState::Expired)]).await.unwrap();
    db.save_clusters(&[]).await.unwrap();
    let saved = db.cluster(ClusterId(70)).await.unwrap();
    assert_eq!((saved.members, saved.state, saved.last_at), (3, ClusterState::Expired, t(3)));
    assert_eq!(db.cluster(ClusterId(71)).await.unwrap().members, 1);
    // A cluster begun without a service takes the one its members name later; saving keeps it, one by one too.
    let unnamed = OutageCluster { service: Service::Unknown, ..cluster(72, 1, ClusterState::Open) };
    db.save_clusters(std::slice::from_ref(&unnamed)).await.unwrap();
    db.save_clusters(&[cluster(72, 2, ClusterState::Open)]).await.unwrap();
    assert_eq!(db.cluster(ClusterId(72)).await.unwrap().service, Service::Internet);
    db.save_cluster(&OutageCluster { service: Service::Tv, ..cluster(72, 3, ClusterState::Open) }).await.unwrap();
    assert_eq!(db.cluster(ClusterId(72)).await.unwrap().service, Service::Tv);

    // Subscriptions: one statement; those that exist already are skipped.
    let sub = |conversation, target| Subscription::new(conversation, Some(anna.id), target, t(4));
    let target = SubscriptionTarget::Cluster(ClusterId(70));
    db.subscribe(&Subscription::new(chat.id, Some(anna.id), target, t(3))).await.unwrap();
    let new = db.subscribe_many(&[sub(chat.id, target), sub(other, target), sub(other, target)]).await.unwrap();
    assert_eq!(new, 1, "only the other chat is new");
    assert_eq!(db.subscribers(target).await.unwrap().len(), 2);
    assert_eq!(db.subscribe_many(&[]).await.unwrap(), 0);

    // Tickets: the open ones of many pairs in one statement, the newest per pair, closed ones left out.
    let new_ticket = |conversation, subject: &str, at| NewTicket {
        due_at: Some(t(5000)),
        first_response_due_at: Some(t(5000)),
        ..billing_ticket(conversation, &anna, subject, at)
    };
    let closed = db.create_ticket(new_ticket(chat.id, "old", t(1))).await.unwrap();
    db.set_ticket_state(closed.id, TicketState::Closed, None, t(2)).await.unwrap();
    let open = db.create_ticket(new_ticket(chat.id, "open", t(3))).await.unwrap();
    let found = db.open_tickets(&[(chat.id, anna.id), (other, anna.id), (chat.id, anna.id)]).await.unwrap();
    assert_eq!(found.iter().map(|t| t.id).collect::<Vec<_>>(), vec![open.id]);
    assert!(db.open_tickets(&[]).await.unwrap().is_empty());

    // Writing: a new ticket with two messages, and a changed one with an event; one batch.
    let event =
        |body: &str, at| NewTicketEvent { kind: TicketEventKind::CustomerMessage, actor: None, body: body.into(), at };
    let mut changed = open.clone();
    changed.state = TicketState::Open;
    changed.updated_at = t(9);
    let writes = TicketWrites {
        created: vec![CreatedTicket { new: new_ticket(other, "nieuw", t(7)), updated_at: t(8) }],
        changed: vec![changed],
        events: vec![
            (TicketRef::Created(0), event("nieuw", t(7))),
            (TicketRef::Stored(open.id), event("nog steeds", t(9))),
            (TicketRef::Created(0), event("en nog iets", t(8))),
        ],
    };
    let ids = db.write_tickets(&writes).await.unwrap().expect("nothing changed in between");
    assert_eq!(ids.len(), 1);
    let created = db.ticket(ids[0]).await.unwrap();
    assert_eq!((created.conversation, created.state, created.subject.as_str()), (other, TicketState::New, "nieuw"));
    assert_eq!((created.created_at, created.updated_at, created.platform), (t(7), t(8), Platform::Telegram));
    let kinds: Vec<_> = db.ticket_events(created.id).await.unwrap().into_iter().map(|e| (e.kind, e.body)).collect();
    assert_eq!(
        kinds,
        vec![
            (TicketEventKind::Created, "nieuw".to_owned()),
            (TicketEventKind::CustomerMessage, "nieuw".to_owned()),
            (TicketEventKind::CustomerMessage, "en nog iets".to_owned()),
        ]
    );
    let written = db.ticket(open.id).await.unwrap();
    assert_eq!((written.state, written.updated_at, written.version), (TicketState::Open, t(9), open.version + 1));
    assert_eq!(db.ticket_events(open.id).await.unwrap().last().unwrap().body, "nog steeds");
    assert_eq!(db.write_tickets(&TicketWrites::default()).await.unwrap(), Some(Vec::new()));
}

async fn a_ticket_batch_refuses_what_changed_since_it_was_read(t_db: &TestDb) {
    use webcare_domain::{CreatedTicket, TicketWrites};
    let db = t_db.db();
    let (anna, chat) = customer_and_chat(db, ConversationKind::Private).await;
    let new_ticket = |subject: &str| billing_ticket(chat.id, &anna, subject, t(1));
    let open = db.create_ticket(new_ticket("open")).await.unwrap();
    // Another writer moved the ticket on since this batch read it.
    let mut stale = open.clone();
    stale.state = TicketState::Pending;
    let mut moved = open.clone();
    moved.state = TicketState::Open;
    db.update_ticket(&moved, &[]).await.unwrap().expect("the first writer wins");
    let unit = db.begin().await.unwrap();
    let writes = TicketWrites { changed: vec![stale], ..TicketWrites::default() };
    assert_eq!(unit.write_tickets(&writes).await.unwrap(), None);
    unit.rollback().await.unwrap();
    assert_eq!(db.ticket(open.id).await.unwrap().state, TicketState::Open, "the other writer's change stands");

    // A new ticket for a customer who has an open one on that conversation by now.
    let writes = TicketWrites {
        created: vec![CreatedTicket { new: new_ticket("second"), updated_at: t(3) }],
        ..TicketWrites::default()
    };
    let unit = db.begin().await.unwrap();
    assert_eq!(unit.write_tickets(&writes).await.unwrap(), None);
    unit.rollback().await.unwrap();
    assert_eq!(db.open_tickets(&[(chat.id, anna.id)]).await.unwrap().len(), 1, "still one open ticket");
}
