//! The ticket lifecycle on real databases: every case runs on SQLite and on PostgreSQL, through `Ticketing` and
//! the `Store` methods it uses, including claims raced from two connection pools as two processes would.

use std::collections::BTreeSet;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use tokio::sync::Barrier;
use webcare_domain::{
    Agent, AssigneeFilter, ClaimOutcome, Conversation, ConversationKind, Customer, NewAgent, NewConversation,
    NewCustomer, NewTicketEvent, Platform, Role, Store, StoreError, TicketClaim, TicketEventKind, TicketFilter,
    TicketId, TicketState, Timestamp,
};
use webcare_storage::Db;
use webcare_tests::TestDb;
use webcare_ticketing::{CustomerMessage, SlaPolicy, TicketError, TicketPatch, TicketPolicy, Ticketing, WeekHours};

/// Monday 2 March 2026, 09:00 UTC, plus `secs`.
fn t(secs: i64) -> Timestamp {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap() + Duration::seconds(secs)
}

const MIN: i64 = 60;
const HOUR: i64 = 3600;

contract!(
    concurrent_claims_have_exactly_one_winner,
    claims_lapse_renew_and_refuse_closed_or_missing_tickets,
    a_case_from_first_message_to_closed,
    concurrent_first_messages_open_one_ticket,
    concurrent_changes_are_all_kept,
    stale_writes_are_refused,
    the_queue_filters_and_sorts_by_due_time,
    patches_apply_whole_or_not_at_all,
);

/// Open around the clock in UTC, so that due times in these cases are plain arithmetic (business hours have
/// their own tests in the ticketing crate). Claims lapse after 30 minutes, solved tickets close after 72 hours.
fn policy() -> TicketPolicy {
    let utc: webcare_ticketing::Tz = "UTC".parse().expect("UTC is a zone");
    TicketPolicy {
        sla: SlaPolicy { timezone: utc, hours: WeekHours::always(), ..SlaPolicy::default() },
        ..TicketPolicy::default()
    }
}

fn service(db: &Db) -> Ticketing {
    Ticketing::new(Arc::new(db.clone()), policy())
}

async fn agent(db: &Db, name: &str, role: Role) -> Agent {
    db.create_agent(NewAgent { name: name.into(), role, password_hash: None, at: t(0) }).await.unwrap()
}

async fn customer_on(db: &Db, platform: Platform, user: &str) -> (Customer, Conversation) {
    let customer = db
        .upsert_customer(
            NewCustomer { platform, platform_user_id: user.into(), display_name: format!("customer {user}") },
            t(0),
        )
        .await
        .unwrap();
    let chat = db
        .upsert_conversation(
            NewConversation {
                platform,
                platform_chat_id: format!("chat-{user}"),
                kind: ConversationKind::Private,
                title: None,
            },
            t(0),
        )
        .await
        .unwrap();
    (customer, chat)
}

fn message<'a>(customer: &Customer, chat: &Conversation, text: &'a str) -> CustomerMessage<'a> {
    CustomerMessage { conversation: chat.id, customer: customer.id, text, category: "billing", priority: None }
}

/// A new ticket from a customer's first message.
async fn new_ticket(db: &Db, user: &str) -> TicketId {
    let (customer, chat) = customer_on(db, Platform::Telegram, user).await;
    service(db).open_or_append(message(&customer, &chat, "mijn factuur klopt niet"), t(0)).await.unwrap().ticket.id
}

fn kinds_of(events: &[webcare_domain::TicketEvent]) -> Vec<TicketEventKind> {
    events.iter().map(|e| e.kind).collect()
}

async fn concurrent_claims_have_exactly_one_winner(t_db: &TestDb) {
    let first = t_db.db();
    let second = t_db.another().await;
    let ticket = new_ticket(first, "u1").await;
    const CLAIMERS: usize = 16;
    let mut agents = Vec::new();
    for i in 0..CLAIMERS {
        agents.push(agent(first, &format!("agent-{i}"), Role::Agent).await);
    }
    // Half the claimers use one pool and half the other, as agents on two webcare instances would; the barrier
    // releases them together.
    let barrier = Arc::new(Barrier::new(CLAIMERS));
    let mut tasks = Vec::new();
    for (i, a) in agents.iter().cloned().enumerate() {
        let db = if i % 2 == 0 { first.clone() } else { second.clone() };
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let ticketing = service(&db);
            barrier.wait().await;
            ticketing.claim(ticket, &a, t(10)).await
        }));
    }
    let mut winners = Vec::new();
    let mut losers = Vec::new();
    for (task, a) in tasks.into_iter().zip(&agents) {
        match task.await.unwrap() {
            Ok(won) => winners.push((a.clone(), won)),
            Err(TicketError::AlreadyClaimed { by, holder }) => losers.push((by, holder)),
            Err(e) => panic!("{} got an unexpected error: {e}", a.name),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claimer wins");
    let (winner, won) = &winners[0];
    assert_eq!(losers.len(), CLAIMERS - 1);
    assert!(losers.iter().all(|(by, holder)| by == &winner.name && holder == &winner.id), "{losers:?}");
    assert_eq!((won.state, won.claimed_by, won.assignee), (TicketState::Open, Some(winner.id), Some(winner.id)));

    let stored = second.ticket(ticket).await.unwrap();
    assert_eq!((stored.claimed_by, stored.claimed_at, stored.state), (Some(winner.id), Some(t(10)), TicketState::Open));
    let events = first.ticket_events(ticket).await.unwrap();
    let claims: Vec<_> = events.iter().filter(|e| e.kind == TicketEventKind::Claimed).collect();
    assert_eq!(claims.len(), 1, "one claim recorded");
    assert_eq!((claims[0].actor, claims[0].at), (Some(winner.id), t(10)));
    let opened = events.iter().filter(|e| e.kind == TicketEventKind::StateChanged && e.body == "open").count();
    assert_eq!(opened, 1);
    second.close().await;
}

async fn claims_lapse_renew_and_refuse_closed_or_missing_tickets(t_db: &TestDb) {
    let db = t_db.db();
    let tickets = service(db);
    let (sam, kim, ada) =
        (agent(db, "sam", Role::Agent).await, agent(db, "kim", Role::Agent).await, agent(db, "ada", Role::Admin).await);
    let id = new_ticket(db, "u1").await;

    let claimed = tickets.claim(id, &sam, t(0)).await.unwrap();
    assert_eq!(claimed.claimed_at, Some(t(0)));
    // Sam claiming again renews: the claim's start stays, the activity moves, and nothing new is recorded.
    let renewed = tickets.claim(id, &sam, t(20 * MIN)).await.unwrap();
    assert_eq!((renewed.claimed_at, renewed.last_activity_at), (Some(t(0)), Some(t(20 * MIN))));
    let claim_events =
        |events: Vec<webcare_domain::TicketEvent>| events.iter().filter(|e| e.kind == TicketEventKind::Claimed).count();
    assert_eq!(claim_events(tickets.events(id).await.unwrap()), 1);
    assert_eq!(tickets.holder(&renewed, t(49 * MIN)).await.unwrap().map(|a| a.name), Some("sam".to_owned()));

    // Live until 30 idle minutes after Sam's last action (20 minutes in), lapsed from then on.
    match tickets.claim(id, &kim, t(50 * MIN) - Duration::milliseconds(1)).await {
        Err(TicketError::AlreadyClaimed { by, .. }) => assert_eq!(by, "sam"),
        other => panic!("expected AlreadyClaimed, got {other:?}"),
    }
    let taken = tickets.claim(id, &kim, t(50 * MIN)).await.unwrap();
    assert_eq!((taken.claimed_by, taken.assignee, taken.claimed_at), (Some(kim.id), Some(kim.id), Some(t(50 * MIN))));

    // An admin takes over a live claim; the event names the previous holder.
    let over = tickets.take_over(id, &ada, t(51 * MIN)).await.unwrap();
    assert_eq!(over.claimed_by, Some(ada.id));
    let events = tickets.events(id).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(
        (last.kind, last.actor, last.body.clone()),
        (TicketEventKind::TakenOver, Some(ada.id), kim.id.to_string())
    );
    assert!(matches!(tickets.take_over(id, &kim, t(52 * MIN)).await, Err(TicketError::NotAllowed { .. })));

    // The store answers a claim on a held ticket with the holder.
    let attempt = TicketClaim { ticket: id, agent: sam.id, at: t(52 * MIN), lapsed_before: t(22 * MIN) };
    match db.claim_ticket(&attempt).await.unwrap() {
        ClaimOutcome::Held { holder, ticket } => assert_eq!((holder.name.as_str(), ticket.id), ("ada", id)),
        other => panic!("expected Held, got {other:?}"),
    }

    // Closed tickets and missing ones cannot be claimed.
    tickets.set_state(id, &ada, TicketState::Closed, t(53 * MIN)).await.unwrap();
    assert!(matches!(tickets.claim(id, &sam, t(54 * MIN)).await, Err(TicketError::Closed(c)) if c == id));
    assert!(matches!(tickets.claim(TicketId(4242), &sam, t(0)).await, Err(TicketError::NotFound(TicketId(4242)))));
    assert!(matches!(tickets.note(TicketId(4242), &sam, "x", t(0)).await, Err(TicketError::NotFound(_))));
}

async fn a_case_from_first_message_to_closed(t_db: &TestDb) {
    let db = t_db.db();
    let tickets = service(db);
    let sam = agent(db, "sam", Role::Agent).await;
    let (anna, chat) = customer_on(db, Platform::Discord, "anna").await;

    let first =
        tickets.open_or_append(message(&anna, &chat, "Mijn factuur is te hoog\nklantnr 123"), t(0)).await.unwrap();
    assert!(first.created && !first.reopened);
    let tk = first.ticket.clone();
    assert_eq!(
        (tk.state, tk.platform, tk.priority, tk.category.as_str()),
        (TicketState::New, Platform::Discord, 3, "billing")
    );
    assert_eq!(tk.subject, "Mijn factuur is te hoog");
    assert_eq!(tk.first_response_due_at, Some(t(4 * HOUR)), "normal priority: four business hours");
    assert_eq!(tk.resolution_due_at, Some(t(24 * HOUR)));
    assert_eq!(tk.due_at, tk.first_response_due_at);
    assert_eq!(
        kinds_of(&tickets.events(tk.id).await.unwrap()),
        [TicketEventKind::Created, TicketEventKind::CustomerMessage]
    );

    // A second message joins the ticket.
    let second = tickets.open_or_append(message(&anna, &chat, "nog steeds niets gehoord"), t(MIN)).await.unwrap();
    assert_eq!((second.ticket.id, second.created, second.reopened), (tk.id, false, false));
    assert_eq!(second.event.body, "nog steeds niets gehoord");

    // The reply: recorded with the first-response time, and an outbox row for the caller to send once.
    let reply = tickets.record_reply(tk.id, &sam, "We zoeken het uit.", t(10 * MIN)).await.unwrap();
    assert_eq!((reply.ticket.state, reply.ticket.first_responded_at), (TicketState::Open, Some(t(10 * MIN))));
    assert_eq!(reply.ticket.due_at, Some(t(24 * HOUR)));
    assert_eq!((reply.outbox.conversation, reply.outbox.body.as_str()), (chat.id, "We zoeken het uit."));
    let queued = db.enqueue(reply.outbox.clone(), t(10 * MIN)).await.unwrap();
    assert!(queued.is_new());
    assert!(!db.enqueue(reply.outbox.clone(), t(11 * MIN)).await.unwrap().is_new(), "sent once");

    let note = tickets.note(tk.id, &sam, "klant heeft twee contracten", t(11 * MIN)).await.unwrap();
    assert_eq!((note.kind, note.actor, note.at), (TicketEventKind::Note, Some(sam.id), t(11 * MIN)));

    // Waiting on the customer; the customer's answer reopens it to Sam.
    tickets.set_state(tk.id, &sam, TicketState::Pending, t(12 * MIN)).await.unwrap();
    let answer = tickets.open_or_append(message(&anna, &chat, "contractnummer 555"), t(HOUR)).await.unwrap();
    assert!(answer.reopened);
    assert_eq!(
        (answer.ticket.id, answer.ticket.state, answer.ticket.assignee),
        (tk.id, TicketState::Open, Some(sam.id))
    );

    // Solved, then closed by the sweep 72 hours later and not before.
    let solved = tickets.set_state(tk.id, &sam, TicketState::Solved, t(2 * HOUR)).await.unwrap();
    assert_eq!((solved.solved_at, solved.claimed_by, solved.due_at), (Some(t(2 * HOUR)), None, None));
    assert!(tickets.close_solved(t(74 * HOUR) - Duration::milliseconds(1)).await.unwrap().is_empty());
    let closed = tickets.close_solved(t(74 * HOUR)).await.unwrap();
    assert_eq!(closed.iter().map(|t| (t.id, t.state)).collect::<Vec<_>>(), [(tk.id, TicketState::Closed)]);
    assert!(tickets.close_solved(t(75 * HOUR)).await.unwrap().is_empty(), "closed once");

    // Every change is an event with who and when.
    let events = tickets.events(tk.id).await.unwrap();
    let summary: Vec<_> = events.iter().map(|e| (e.kind, e.actor, e.body.as_str(), e.at)).collect();
    use TicketEventKind::*;
    let (s, x) = (Some(sam.id), None);
    assert_eq!(
        summary,
        [
            (Created, x, "Mijn factuur is te hoog", t(0)),
            (CustomerMessage, x, "Mijn factuur is te hoog\nklantnr 123", t(0)),
            (CustomerMessage, x, "nog steeds niets gehoord", t(MIN)),
            (Claimed, s, "", t(10 * MIN)),
            (StateChanged, s, "open", t(10 * MIN)),
            (Reply, s, "We zoeken het uit.", t(10 * MIN)),
            (Note, s, "klant heeft twee contracten", t(11 * MIN)),
            (StateChanged, s, "pending", t(12 * MIN)),
            (CustomerMessage, x, "contractnummer 555", t(HOUR)),
            (StateChanged, x, "open", t(HOUR)),
            // Sam's claim lapsed while the ticket waited; solving it takes it again before ending it.
            (Claimed, s, "", t(2 * HOUR)),
            (StateChanged, s, "solved", t(2 * HOUR)),
            (StateChanged, x, "closed", t(74 * HOUR)),
        ]
    );

    // After closing, the customer's next message is a new case.
    let again = tickets.open_or_append(message(&anna, &chat, "andere vraag"), t(80 * HOUR)).await.unwrap();
    assert!(again.created);
    assert_ne!(again.ticket.id, tk.id);
    assert!(matches!(
        tickets.customer_message(tk.id, "hallo?", t(81 * HOUR)).await,
        Err(TicketError::Closed(id)) if id == tk.id
    ));
}

async fn concurrent_first_messages_open_one_ticket(t_db: &TestDb) {
    let first = t_db.db();
    let second = t_db.another().await;
    let (anna, chat) = customer_on(first, Platform::Webchat, "anna").await;
    const MESSAGES: usize = 12;
    let barrier = Arc::new(Barrier::new(MESSAGES));
    let mut tasks = Vec::new();
    for i in 0..MESSAGES {
        let db = if i % 2 == 0 { first.clone() } else { second.clone() };
        let (barrier, anna, chat) = (barrier.clone(), anna.clone(), chat.clone());
        tasks.push(tokio::spawn(async move {
            let tickets = service(&db);
            let text = format!("bericht {i}");
            barrier.wait().await;
            tickets.open_or_append(message(&anna, &chat, &text), t(i as i64)).await.unwrap()
        }));
    }
    let mut ids = BTreeSet::new();
    let mut created = 0;
    for task in tasks {
        let intake = task.await.unwrap();
        ids.insert(intake.ticket.id);
        created += usize::from(intake.created);
    }
    assert_eq!((ids.len(), created), (1, 1), "one ticket for one customer's burst");
    let id = *ids.first().unwrap();
    let messages = first.ticket_events(id).await.unwrap();
    let bodies: BTreeSet<_> =
        messages.iter().filter(|e| e.kind == TicketEventKind::CustomerMessage).map(|e| e.body.clone()).collect();
    assert_eq!(bodies.len(), MESSAGES, "every message is on the ticket");
    second.close().await;
}

async fn concurrent_changes_are_all_kept(t_db: &TestDb) {
    let first = t_db.db();
    let second = t_db.another().await;
    let ada = agent(first, "ada", Role::Admin).await;
    let id = new_ticket(first, "u1").await;
    // Each task adds its own tag from one of two pools; optimistic retries must keep every one.
    const TAGGERS: usize = 8;
    let barrier = Arc::new(Barrier::new(TAGGERS));
    let mut tasks = Vec::new();
    for i in 0..TAGGERS {
        let db = if i % 2 == 0 { first.clone() } else { second.clone() };
        let (barrier, ada) = (barrier.clone(), ada.clone());
        tasks.push(tokio::spawn(async move {
            let tickets = service(&db);
            barrier.wait().await;
            tickets.add_tags(id, &ada, &[&format!("tag-{i}")], t(i as i64)).await.unwrap()
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let stored = first.ticket(id).await.unwrap();
    let tags: BTreeSet<_> = stored.tags.iter().cloned().collect();
    assert_eq!(tags, (0..TAGGERS).map(|i| format!("tag-{i}")).collect::<BTreeSet<_>>());
    let changes =
        first.ticket_events(id).await.unwrap().iter().filter(|e| e.kind == TicketEventKind::TagsChanged).count();
    assert_eq!(changes, TAGGERS);
    // Created (version 0), then one write per tag.
    assert_eq!(stored.version, TAGGERS as i64);
    second.close().await;
}

async fn stale_writes_are_refused(t_db: &TestDb) {
    let db = t_db.db();
    let id = new_ticket(db, "u1").await;
    let read = db.ticket(id).await.unwrap();
    let event = |body: &str| NewTicketEvent { kind: TicketEventKind::Note, actor: None, body: body.into(), at: t(5) };

    let mut first = read.clone();
    first.priority = 1;
    first.tags = vec!["vip".into()];
    first.updated_at = t(5);
    let written = db.update_ticket(&first, &[event("eerste")]).await.unwrap().expect("the first write wins");
    assert_eq!((written.ticket.version, written.ticket.priority), (read.version + 1, 1));
    assert_eq!(written.ticket.tags, ["vip"]);
    assert_eq!(written.events.len(), 1);

    // A write computed from the same, now stale, read is refused and records nothing.
    let mut stale = read.clone();
    stale.priority = 4;
    assert!(db.update_ticket(&stale, &[event("tweede")]).await.unwrap().is_none());
    assert_eq!(db.ticket(id).await.unwrap().priority, 1);
    let notes = db.ticket_events(id).await.unwrap().into_iter().filter(|e| e.kind == TicketEventKind::Note).count();
    assert_eq!(notes, 1);

    let mut missing = read.clone();
    missing.id = TicketId(4242);
    assert!(matches!(db.update_ticket(&missing, &[]).await, Err(StoreError::NotFound { what: "ticket", .. })));
}

async fn the_queue_filters_and_sorts_by_due_time(t_db: &TestDb) {
    let db = t_db.db();
    let tickets = service(db);
    let sam = agent(db, "sam", Role::Agent).await;
    let (a, a_chat) = customer_on(db, Platform::Telegram, "a").await;
    let (b, b_chat) = customer_on(db, Platform::Discord, "b").await;
    let (c, c_chat) = customer_on(db, Platform::Webchat, "c").await;
    let open = |who: &Customer, chat: &Conversation, category: &'static str, priority: i64| CustomerMessage {
        conversation: chat.id,
        customer: who.id,
        text: "help",
        category,
        priority: Some(priority),
    };
    // Due: a normal ticket at 4 h, an urgent one (created later) at 30 min, a low one at 8 h.
    let normal = tickets.open_or_append(open(&a, &a_chat, "billing", 3), t(0)).await.unwrap().ticket.id;
    let urgent = tickets.open_or_append(open(&b, &b_chat, "technical", 1), t(MIN)).await.unwrap().ticket.id;
    let low = tickets.open_or_append(open(&c, &c_chat, "billing", 4), t(2 * MIN)).await.unwrap().ticket.id;
    tickets.claim(low, &sam, t(3 * MIN)).await.unwrap();

    let ids = |list: Vec<webcare_domain::Ticket>| list.into_iter().map(|t| t.id).collect::<Vec<_>>();
    let query = |f: TicketFilter| {
        let tickets = tickets.clone();
        async move { ids(tickets.queue(&f).await.unwrap()) }
    };
    assert_eq!(query(TicketFilter::default()).await, [urgent, normal, low]);
    assert_eq!(query(TicketFilter { states: vec![TicketState::New], ..Default::default() }).await, [urgent, normal]);
    assert_eq!(query(TicketFilter { category: Some("billing".into()), ..Default::default() }).await, [normal, low]);
    assert_eq!(query(TicketFilter { platform: Some(Platform::Discord), ..Default::default() }).await, [urgent]);
    assert_eq!(
        query(TicketFilter { assignee: Some(AssigneeFilter::Agent(sam.id)), ..Default::default() }).await,
        [low]
    );
    assert_eq!(
        query(TicketFilter { assignee: Some(AssigneeFilter::Nobody), ..Default::default() }).await,
        [urgent, normal]
    );
    assert_eq!(
        query(TicketFilter {
            states: vec![TicketState::New, TicketState::Open],
            category: Some("billing".into()),
            platform: Some(Platform::Webchat),
            assignee: Some(AssigneeFilter::Agent(sam.id)),
            ..Default::default()
        })
        .await,
        [low]
    );
    assert_eq!(query(TicketFilter { limit: Some(2), ..Default::default() }).await, [urgent, normal]);
    assert!(query(TicketFilter { solved_before: Some(t(HOUR)), ..Default::default() }).await.is_empty());
}

async fn patches_apply_whole_or_not_at_all(t_db: &TestDb) {
    let db = t_db.db();
    let tickets = service(db);
    let (sam, kim) = (agent(db, "sam", Role::Agent).await, agent(db, "kim", Role::Agent).await);
    let id = new_ticket(db, "u1").await;

    let patched = tickets
        .update(id, &sam, &TicketPatch { state: Some(TicketState::Pending), priority: Some(2), assignee: None }, t(MIN))
        .await
        .unwrap();
    assert_eq!((patched.state, patched.priority, patched.claimed_by), (TicketState::Pending, 2, Some(sam.id)));
    assert_eq!(patched.first_response_due_at, Some(t(HOUR)), "high priority: one hour from creation");

    // A valid priority with a forbidden state change: nothing of it is written.
    let before = db.ticket(id).await.unwrap();
    let refused = tickets
        .update(
            id,
            &sam,
            &TicketPatch { state: Some(TicketState::Closed), priority: Some(1), assignee: None },
            t(2 * MIN),
        )
        .await;
    assert!(matches!(refused, Err(TicketError::NotAllowed { .. })), "{refused:?}");
    assert_eq!(db.ticket(id).await.unwrap(), before);

    // Transfer to Kim, then Sam is the one kept out.
    let moved = tickets
        .update(id, &sam, &TicketPatch { assignee: Some(Some(kim.id)), ..Default::default() }, t(3 * MIN))
        .await
        .unwrap();
    assert_eq!((moved.assignee, moved.claimed_by), (Some(kim.id), Some(kim.id)));
    match tickets.record_reply(id, &sam, "toch ik", t(4 * MIN)).await {
        Err(TicketError::AlreadyClaimed { by, .. }) => assert_eq!(by, "kim"),
        other => panic!("expected AlreadyClaimed, got {other:?}"),
    }
    assert!(matches!(
        tickets
            .update(
                id,
                &kim,
                &TicketPatch { assignee: Some(Some(webcare_domain::AgentId(999))), ..Default::default() },
                t(5 * MIN)
            )
            .await,
        Err(TicketError::UnknownAgent(_))
    ));
    assert!(matches!(
        tickets.update(id, &kim, &TicketPatch { priority: Some(9), ..Default::default() }, t(5 * MIN)).await,
        Err(TicketError::Invalid { field: "priority", .. })
    ));
}
