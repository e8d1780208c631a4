//! Staff chats as a place to work: commands act as the agent linked to the chat account that wrote them, within that
//! agent's role, on SQLite and PostgreSQL. The adapters' side (Telegram's group, Discord's channel) is tested in
//! their end-to-end tests and in the CLI test against the fake Telegram.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use webcare_app::intake::Pipeline;
use webcare_app::staff::{Desk, issue_link_code};
use webcare_domain::{
    Agent, ConversationKind, InboundEvent, InboundKind, Intake, IntakeError, NewAgent, NewConversation, NoticeState,
    Platform, Role, Service, StaffDesk, Store, TicketEventKind, TicketState, Timestamp,
};
use webcare_tests::TestDb;

use crate::intake::{event, private};

fn t(secs: i64) -> Timestamp {
    Utc.timestamp_opt(1_790_000_000 + secs, 0).unwrap()
}

const TEAM: &str = "-100777";

contract!(
    staff_commands_act_as_the_linked_agent_within_their_role,
    a_staff_command_is_carried_out_once,
    a_reply_is_recorded_sent_and_answered_all_or_nothing,
    under_four_eyes_another_admin_approves_in_the_chat,
    admins_write_a_notice_and_widen_its_scope_in_the_chat,
);

struct Setup {
    store: Arc<dyn Store>,
    pipeline: Arc<Pipeline>,
    desk: Desk,
}

async fn setup(db: &TestDb) -> Setup {
    setup_with(db, None, false).await
}

/// With `answers_to`, the desk answers the staff chat in that conversation instead of the one registered for it;
/// with `four_eyes`, a notice needs a second admin's approval.
async fn setup_with(db: &TestDb, answers_to: Option<webcare_domain::ConversationId>, four_eyes: bool) -> Setup {
    let webcare_tests::App { store, ticketing, pipeline, wake, .. } = webcare_tests::app(db.db()).await;
    let notices =
        Arc::new(webcare_app::notices::Notices::new(store.clone(), pipeline.clone(), wake.clone(), four_eyes));
    let team = store
        .upsert_conversation(
            NewConversation {
                platform: Platform::Telegram,
                platform_chat_id: TEAM.into(),
                kind: ConversationKind::Public,
                title: Some("staff".into()),
            },
            t(0),
        )
        .await
        .unwrap();
    let chat = answers_to.unwrap_or(team.id);
    let desk = Desk::new(store.clone(), ticketing, notices, wake, [(Platform::Telegram, TEAM.to_owned(), chat)])
        .with_lexicon(pipeline.clone());
    Setup { store, pipeline, desk }
}

/// What a team member writes in the staff group.
fn said(user: &str, id: u32, text: &str) -> InboundEvent {
    let mut e = event(user, TEAM, ConversationKind::Public, &id.to_string(), text, t(0));
    if let Some(rest) = text.strip_prefix('/') {
        let (name, args) = rest.split_once(' ').unwrap_or((rest, ""));
        e.kind = InboundKind::Command { name: name.into(), args: args.into() };
    }
    e
}

async fn agent(store: &dyn Store, name: &str, role: Role) -> Agent {
    store.create_agent(NewAgent { name: name.into(), role, password_hash: None, at: t(0) }).await.unwrap()
}

async fn staff_commands_act_as_the_linked_agent_within_their_role(db: &TestDb) {
    let Setup { store, pipeline, desk } = setup(db).await;
    let now = t(600);
    let ann = agent(store.as_ref(), "ann", Role::Agent).await;
    let bo = agent(store.as_ref(), "bo", Role::Agent).await;
    let ria = agent(store.as_ref(), "ria", Role::Admin).await;
    pipeline.receive(private("501", "1", "Mijn factuur klopt niet, ik betaal dubbel", t(10))).await.unwrap();
    let ticket = store.tickets(&[]).await.unwrap().remove(0);
    let alert = crate::alerts::raise(store.as_ref(), Service::Internet, Some("Utrecht"), t(300)).await;

    let mut n = 0;
    let mut say = async |user: &str, text: &str| {
        n += 1;
        desk.answer(&said(user, n, text), now).await.unwrap().unwrap_or_else(|| panic!("no answer to {text}"))
    };
    // Before linking: help, and a pointer to the console for anything else.
    assert!(say("11", "/help").await.contains("/claim N: take ticket N"));
    assert!(say("11", "/queue").await.starts_with("I do not know you yet"));
    assert!(say("11", "/link").await.starts_with("Send /link CODE"));
    assert!(say("11", "/link ABCDEFGHJK").await.starts_with("That code is unknown, used or expired"));
    // An anonymous Telegram group admin writes as the group: no link acts for all of them.
    assert!(say(TEAM, "/link ABCDEFGHJK").await.starts_with("You write anonymously, as the group"));
    for (user, agent) in [("11", &ann), ("12", &bo), ("13", &ria)] {
        let code = issue_link_code(store.as_ref(), agent, now).await.unwrap();
        let linked = say(user, &format!("/link {code}")).await;
        assert_eq!(
            linked,
            format!("Linked: your commands here act as {} ({}). Send /help for the list.", agent.name, agent.role)
        );
    }

    // Tickets, as the agent who wrote the command.
    let queue = say("11", "/queue").await;
    assert!(queue.contains(&format!("#{} new · billing · telegram · due ", ticket.id)), "{queue}");
    assert!(!queue.contains("factuur"), "no customer's words in a staff chat: {queue}");
    assert_eq!(
        say("11", &format!("/claim {}", ticket.id)).await,
        format!("Ticket #{} (billing) is yours, ann. Language: Dutch (their messages).", ticket.id)
    );
    assert_eq!(say("12", &format!("/claim #{}", ticket.id)).await, "Ticket is claimed by ann.");
    assert!(say("12", "/queue").await.contains("claimed by ann"));
    // Finding a ticket by the customer's words or its number, named without those words.
    let found = say("12", "/find DUBBEL").await;
    assert!(
        found.starts_with("Tickets that match") && found.contains(&format!("#{} open · billing", ticket.id)),
        "{found}"
    );
    assert!(!found.to_lowercase().contains("dubbel"), "no customer's words in a staff chat: {found}");
    assert!(say("12", &format!("/find #{}", ticket.id)).await.contains(&format!("#{} open", ticket.id)));
    assert_eq!(say("12", "/find storing").await, "No ticket matches.");
    assert!(say("12", "/find").await.starts_with("Send /find TEXT"));
    assert!(say("11", "/claim twelve").await.starts_with("Usage: /claim N"));
    assert!(say("11", "/claim 99999").await.starts_with("Ticket 99999 not found"));
    assert_eq!(say("11", &format!("/note {}", ticket.id)).await, format!("Usage: /note {} TEXT", ticket.id));
    assert_eq!(
        say("11", &format!("/note {} Klant teruggebeld", ticket.id)).await,
        format!("Note added to ticket #{}.", ticket.id)
    );
    // Approved replies, by number or title, with the customer's name filled in.
    assert_eq!(say("11", "/canned").await, "No canned replies yet; admins write them in the console.");
    let canned = store.create_canned_reply("Excuses", "Sorry {name}, {agent} zoekt het uit.", None, now).await.unwrap();
    assert_eq!(
        say("11", "/canned").await,
        format!("Canned replies (send one with /canned TICKET REPLY):\n{}: Excuses", canned.id)
    );
    assert!(say("11", &format!("/canned {} Bedankt", ticket.id)).await.starts_with("No canned reply is \"Bedankt\""));
    assert!(say("11", &format!("/canned {}", ticket.id)).await.starts_with("Usage: /canned"));
    assert!(say("11", &format!("/canned {} excuses", ticket.id)).await.starts_with("Reply to ticket"));
    let reply = say("11", &format!("/reply {} Het dubbele bedrag wordt teruggestort.", ticket.id)).await;
    assert!(
        reply.starts_with(&format!("Reply to ticket #{} queued for the customer on telegram", ticket.id)),
        "{reply}"
    );
    assert!(say("11", &format!("/pending {}", ticket.id)).await.contains("waits for the customer"));
    assert_eq!(store.ticket(ticket.id).await.unwrap().state, TicketState::Pending);
    assert_eq!(say("11", &format!("/transfer {}", ticket.id)).await, format!("Usage: /transfer {} NAME", ticket.id));
    assert!(say("11", &format!("/transfer {} nobody", ticket.id)).await.starts_with("No active agent is named"));
    assert_eq!(say("11", &format!("/transfer {} bo", ticket.id)).await, format!("Ticket #{} is bo's now.", ticket.id));
    let moved = store.ticket(ticket.id).await.unwrap();
    assert_eq!((moved.assignee, moved.claimed_by), (Some(bo.id), Some(bo.id)), "bo has the claim");
    assert!(say("11", &format!("/claim {}", ticket.id)).await.contains("claimed by bo"));
    let released = say("12", &format!("/release {}", ticket.id)).await;
    assert_eq!(released, format!("Ticket #{} is back in the queue for anyone to claim.", ticket.id));
    assert!(say("11", &format!("/claim {}", ticket.id)).await.contains("is yours, ann"));
    assert!(say("11", &format!("/solve {}", ticket.id)).await.contains("is solved"));
    assert_eq!(store.ticket(ticket.id).await.unwrap().state, TicketState::Solved);
    let events = store.ticket_events(ticket.id).await.unwrap();
    let by_ann = |kind: TicketEventKind| events.iter().filter(|e| e.kind == kind && e.actor == Some(ann.id)).count();
    let done = [TicketEventKind::Claimed, TicketEventKind::Note, TicketEventKind::Reply, TicketEventKind::StateChanged];
    assert!(done.into_iter().all(|kind| by_ann(kind) >= 1), "{events:?}");
    assert_eq!((by_ann(TicketEventKind::Note), by_ann(TicketEventKind::Reply)), (1, 2), "{events:?}");
    let replies = webcare_tests::drain_outbox(store.as_ref(), now).await;
    let to_customer: Vec<_> =
        replies.iter().filter(|r| r.conversation == ticket.conversation).map(|r| r.body.as_str()).collect();
    assert!(to_customer.contains(&"Het dubbele bedrag wordt teruggestort."), "{to_customer:?}");
    assert!(to_customer.contains(&"Sorry user 501, ann zoekt het uit."), "{to_customer:?}");

    // Alerts and notices: anyone sees the alerts, only admins publish.
    let alerts = say("11", "/alerts").await;
    assert!(alerts.contains(&format!("Alert {}: internet in Utrecht, 6 customers", alert.id)), "{alerts}");
    assert!(alerts.contains(&format!("waiting: /publish {}", alert.id)), "{alerts}");
    assert_eq!(say("11", &format!("/publish {}", alert.id)).await, "Only admins manage notices.");
    assert!(store.notices(false).await.unwrap().is_empty());
    let published = say("13", &format!("/publish {}", alert.id)).await;
    let notice = store.notices(false).await.unwrap().remove(0);
    assert_eq!(published, format!("Notice {} published from alert {}: 0 customers get it.", notice.id, alert.id));
    assert_eq!(
        (notice.title.as_str(), notice.text.as_str()),
        ("Storing internet Utrecht", "We onderzoeken een storing.")
    );
    assert_eq!(
        (notice.services.clone(), notice.regions.clone()),
        (vec![Service::Internet], vec!["Utrecht".to_owned()])
    );
    let again = say("13", &format!("/publish {}", alert.id)).await;
    assert!(again.contains(&format!("already follow notice {}", notice.id)), "{again}");
    assert!(say("12", "/alerts").await.contains(&format!("answered by notice {}", notice.id)));
    // A customer the notice answered asks for a person: whoever claims the case is offered the notice's words.
    pipeline.receive(private("502", "1", "Storing internet in Utrecht?", t(700))).await.unwrap();
    let mut press = private("502", "2", "", t(710));
    press.kind = InboundKind::Button { data: webcare_app::intake::TALK_TO_PERSON.into() };
    pipeline.receive(press).await.unwrap();
    let outage = store.tickets(&[]).await.unwrap().into_iter().find(|t| t.id != ticket.id).expect("a second ticket");
    let claimed = say("12", &format!("/claim {}", outage.id)).await;
    assert!(
        claimed.contains(&format!(
            "Notice {} (investigating) covers this case; answer with its text so public answers stay consistent: \
             We onderzoeken een storing.",
            notice.id
        )),
        "{claimed}"
    );
    let listed = say("11", "/notices").await;
    let line =
        format!("Notice {}: Storing internet Utrecht · investigating · internet · Utrecht · version 1", notice.id);
    assert!(listed.contains(&line), "{listed}");
    assert!(
        say("13", &format!("/update {} fixed", notice.id)).await.starts_with("Usage: /update NOTICE investigating|")
    );
    let identified =
        say("13", &format!("/update {} identified Een kabelbreuk; monteurs zijn onderweg.", notice.id)).await;
    assert_eq!(identified, format!("Notice {} is identified (version 2); its subscribers get the update.", notice.id));
    let resolved = say("13", &format!("/resolve {} De storing is verholpen.", notice.id)).await;
    assert_eq!(
        resolved,
        format!("Notice {} is resolved (version 3); its subscribers get the final message.", notice.id)
    );
    assert_eq!(say("11", "/notices").await, "No open notices.");
    let notice = store.notice(notice.id).await.unwrap();
    assert_eq!((notice.state, notice.text.as_str()), (NoticeState::Resolved, "De storing is verholpen."));
    assert!(say("13", "/resolve").await.starts_with("Usage: /resolve NOTICE"));
    assert_eq!(say("13", "/frobnicate").await, "Unknown command /frobnicate. Send /help for the list.");
    // A deactivated agent's chat account acts for nobody.
    store.set_agent_active(bo.id, false).await.unwrap();
    assert!(say("12", "/queue").await.starts_with("I do not know you yet"));
}

async fn a_staff_command_is_carried_out_once(db: &TestDb) {
    let Setup { store, pipeline, desk } = setup(db).await;
    let ann = agent(store.as_ref(), "ann", Role::Agent).await;
    let code = issue_link_code(store.as_ref(), &ann, Utc::now()).await.unwrap();
    desk.command(said("11", 1, &format!("/link {code}"))).await.unwrap();
    pipeline.receive(private("501", "1", "Mijn factuur klopt niet, ik betaal dubbel", t(10))).await.unwrap();
    let ticket = store.tickets(&[]).await.unwrap().remove(0);
    // Telegram delivers the same update again after a restart: one note, one answer.
    let note = said("11", 2, &format!("/note {} Klant teruggebeld", ticket.id));
    desk.command(note.clone()).await.unwrap();
    desk.command(note).await.unwrap();
    let notes = store.ticket_events(ticket.id).await.unwrap();
    assert_eq!(notes.iter().filter(|e| e.kind == TicketEventKind::Note).count(), 1, "{notes:?}");
    let answer = store.outbox_by_key(&format!("staff:telegram:{TEAM}/2")).await.unwrap().expect("the answer is queued");
    assert_eq!(answer.body, format!("Note added to ticket #{}.", ticket.id));
    assert_eq!(answer.conversation, store.conversation_by_chat(Platform::Telegram, TEAM).await.unwrap().unwrap().id);
    // The team's own conversation gets no answer, and a chat that is not a staff chat is refused.
    desk.command(said("11", 3, "koffie?")).await.unwrap();
    assert!(store.outbox_by_key(&format!("staff:telegram:{TEAM}/3")).await.unwrap().is_none());
    let mut elsewhere = said("11", 4, "/queue");
    elsewhere.chat_id = "-100999".into();
    assert!(matches!(desk.command(elsewhere).await, Err(IntakeError::Invalid(_))));
    // `/link` in a private chat with the bot is answered there; nothing else is taken from a private chat.
    let bo = agent(store.as_ref(), "bo", Role::Agent).await;
    let code = issue_link_code(store.as_ref(), &bo, Utc::now()).await.unwrap();
    let mut private_link = event("12", "12", ConversationKind::Private, "5", &format!("/link {code}"), t(30));
    private_link.kind = InboundKind::Command { name: "link".into(), args: code.clone() };
    assert!(private_link.is_private_link());
    desk.command(private_link).await.unwrap();
    let linked = store.outbox_by_key("staff:telegram:12/5").await.unwrap().expect("answered in the private chat");
    assert!(linked.body.starts_with("Linked: your commands here act as bo"), "{}", linked.body);
    let dm = store.conversation_by_chat(Platform::Telegram, "12").await.unwrap().unwrap();
    assert_eq!((linked.conversation, dm.kind), (dm.id, ConversationKind::Private));
    let mut private_queue = event("12", "12", ConversationKind::Private, "6", "/queue", t(31));
    private_queue.kind = InboundKind::Command { name: "queue".into(), args: String::new() };
    assert!(!private_queue.is_private_link());
    assert!(matches!(desk.command(private_queue).await, Err(IntakeError::Invalid(_))));
    // Nothing said in the staff chat is a customer's message.
    let stored = store.inbound_after(webcare_domain::InboundId(0), 100).await.unwrap();
    assert_eq!(stored.len(), 1, "{stored:?}");
}

async fn a_reply_is_recorded_sent_and_answered_all_or_nothing(db: &TestDb) {
    // The staff chat's answer cannot be stored (its conversation does not exist): the reply must not be half done,
    // or the command delivered again would answer the customer twice.
    let Setup { store, pipeline, desk } = setup_with(db, Some(webcare_domain::ConversationId(999_999)), false).await;
    let ann = agent(store.as_ref(), "ann", Role::Agent).await;
    let code = issue_link_code(store.as_ref(), &ann, t(0)).await.unwrap();
    desk.answer(&said("11", 1, &format!("/link {code}")), t(1)).await.unwrap();
    pipeline.receive(private("501", "1", "Mijn factuur klopt niet, ik betaal dubbel", t(10))).await.unwrap();
    let ticket = store.tickets(&[]).await.unwrap().remove(0);
    let queued_before = store.outbox_counts().await.unwrap();
    let failed = desk.answer(&said("11", 2, &format!("/reply {} Wordt teruggestort.", ticket.id)), t(20)).await;
    assert_eq!(failed.unwrap().unwrap(), "/reply failed: the database refused it. Try again or use the console.");
    let events = store.ticket_events(ticket.id).await.unwrap();
    assert!(!events.iter().any(|e| e.kind == TicketEventKind::Reply), "no reply recorded: {events:?}");
    assert_eq!(store.outbox_counts().await.unwrap(), queued_before, "nothing queued for the customer");
    assert_eq!(store.ticket(ticket.id).await.unwrap().first_responded_at, None);
}

async fn under_four_eyes_another_admin_approves_in_the_chat(db: &TestDb) {
    let Setup { store, desk, .. } = setup_with(db, None, true).await;
    let now = t(600);
    let mut n = 0;
    let mut say = async |user: &str, text: &str| {
        n += 1;
        desk.answer(&said(user, n, text), now).await.unwrap().unwrap()
    };
    let ria = agent(store.as_ref(), "ria", Role::Admin).await;
    let sam = agent(store.as_ref(), "sam", Role::Admin).await;
    for (user, admin) in [("13", &ria), ("14", &sam)] {
        let code = issue_link_code(store.as_ref(), admin, now).await.unwrap();
        assert!(say(user, &format!("/link {code}")).await.starts_with("Linked"));
    }
    let alert = crate::alerts::raise(store.as_ref(), Service::Tv, Some("Gent"), t(300)).await;
    let saved = say("13", &format!("/publish {}", alert.id)).await;
    let notice = store.notices(false).await.unwrap().remove(0);
    assert!(notice.draft);
    assert_eq!(
        saved,
        format!(
            "Notice {} saved from alert {}; under four-eyes approval another admin publishes it: /approve {}.",
            notice.id, alert.id, notice.id
        )
    );
    assert!(say("13", "/notices").await.contains("awaiting approval: /approve"));
    let own = say("13", &format!("/approve {}", notice.id)).await;
    assert!(own.contains("approved by another admin than its author"), "{own}");
    assert!(store.notice(notice.id).await.unwrap().draft, "still a draft");
    let approved = say("14", &format!("/approve {}", notice.id)).await;
    assert_eq!(approved, format!("Notice {} (version 2) is published: 0 customers get it.", notice.id));
    assert!(!store.notice(notice.id).await.unwrap().draft);

    // Published, its new words wait for approval too; customers keep the approved ones meanwhile.
    let proposed = say("13", &format!("/update {} identified Een kabelbreuk in Gent.", notice.id)).await;
    assert!(
        proposed.starts_with(&format!("Notice {}'s new text awaits another admin's approval", notice.id)),
        "{proposed}"
    );
    let current = store.notice(notice.id).await.unwrap();
    assert_eq!((current.version, current.state), (2, NoticeState::Investigating), "nothing went out");
    assert!(say("14", "/notices").await.contains("a new text awaits approval: /approve"));
    // A change of state alone goes out at once, and the waiting text no longer carries the state it would have set.
    let monitoring = say("14", &format!("/update {} monitoring", notice.id)).await;
    assert!(monitoring.contains("is monitoring (version 3)"), "{monitoring}");
    let own = say("13", &format!("/approve {}", notice.id)).await;
    assert!(own.contains("approved by another admin than its author"), "{own}");
    let approved = say("14", &format!("/approve {}", notice.id)).await;
    assert!(approved.starts_with(&format!("Notice {} (version 4) is published", notice.id)), "{approved}");
    let current = store.notice(notice.id).await.unwrap();
    assert_eq!((current.text.as_str(), current.state), ("Een kabelbreuk in Gent.", NoticeState::Monitoring));
    let versions = store.notice_versions(notice.id).await.unwrap();
    assert_eq!((versions[3].author, versions[3].approved_by), (Some(ria.id), Some(sam.id)), "{versions:?}");
    let again = say("14", &format!("/approve {}", notice.id)).await;
    assert!(again.contains("no change of it awaits approval"), "{again}");
}

async fn admins_write_a_notice_and_widen_its_scope_in_the_chat(db: &TestDb) {
    let Setup { store, pipeline, desk } = setup(db).await;
    let now = t(600);
    let mut n = 0;
    let mut say = async |user: &str, text: &str| {
        n += 1;
        desk.answer(&said(user, n, text), now).await.unwrap().unwrap()
    };
    for (user, name, role) in [("11", "ann", Role::Agent), ("13", "ria", Role::Admin)] {
        let agent = agent(store.as_ref(), name, role).await;
        let code = issue_link_code(store.as_ref(), &agent, now).await.unwrap();
        assert!(say(user, &format!("/link {code}")).await.starts_with("Linked"));
    }
    // A customer in Zeist waits in an outage cluster with the holding answer.
    pipeline.receive(private("601", "1", "Storing in Zeist? Geen internet", t(100))).await.unwrap();
    let zeist = store.tickets(&[]).await.unwrap();
    assert!(zeist.is_empty(), "an outage question, no ticket: {zeist:?}");

    let write = "/notice internet in Utrecht: We werken aan een internetstoring in Utrecht.";
    assert_eq!(say("11", write).await, "Only admins manage notices.");
    for (bad, says) in [
        ("/notice internet in Utrecht", "Usage: /notice SCOPE: TEXT"),
        ("/notice gas in Utrecht: Geen gas.", "\"gas\" is no service"),
        ("/notice internet in Utrecht:   ", "Invalid text: 1 to 4000 characters"),
    ] {
        let answer = say("13", bad).await;
        assert!(answer.contains(says), "{bad}: {answer}");
    }
    assert!(store.notices(false).await.unwrap().is_empty(), "bad input changes nothing");
    let written = say("13", write).await;
    let notice = store.notices(false).await.unwrap().remove(0);
    assert!(written.starts_with(&format!("Notice {} (Storing internet Utrecht) is published", notice.id)), "{written}");
    assert_eq!(
        (notice.services.clone(), notice.regions.clone(), notice.text.as_str()),
        (vec![Service::Internet], vec!["Utrecht".to_owned()], "We werken aan een internetstoring in Utrecht.")
    );
    let subscribers = |store: Arc<dyn Store>| async move {
        store.subscribers(webcare_domain::SubscriptionTarget::Notice(notice.id)).await.unwrap().len()
    };
    assert_eq!(subscribers(store.clone()).await, 0, "Zeist is not Utrecht");

    // Widened to Zeist, the notice takes the waiting customer in, who gets it once.
    assert!(say("13", &format!("/scope {}", notice.id)).await.starts_with("Usage: /scope NOTICE SCOPE"));
    assert!(say("11", &format!("/scope {} internet in Utrecht, Zeist", notice.id)).await.contains("Only admins"));
    let widened = say("13", &format!("/scope {} internet in Utrecht, Zeist", notice.id)).await;
    assert_eq!(widened, format!("Notice {} now covers internet in Utrecht, Zeist (version 2).", notice.id));
    assert_eq!(subscribers(store.clone()).await, 1, "the customer in Zeist follows the notice");
    // The holding answer was queued at the wall clock's time, after `now`; the notice goes out after it.
    let rows = webcare_tests::drain_outbox(store.as_ref(), Utc::now() + chrono::Duration::days(1)).await;
    let noticed: Vec<_> = rows.iter().filter(|r| r.body.contains("We werken aan een internetstoring")).collect();
    assert_eq!(noticed.len(), 1, "{rows:?}");
    // The reports in a few lines, for admins.
    assert_eq!(say("11", "/report").await, "Only admins see the reports.");
    assert!(say("13", "/report 0").await.starts_with("Usage: /report [DAYS]"));
    let report = say("13", "/report 7").await;
    assert!(report.starts_with("The last 7 days (Europe/Amsterdam): 1 messages (outage 1)."), "{report}");
    assert!(report.contains("Most named places: Zeist 1.") && report.contains("Spike alerts: 0."), "{report}");
    let nationwide = say("13", &format!("/scope {} all", notice.id)).await;
    assert_eq!(nationwide, format!("Notice {} now covers every service in the whole country (version 3).", notice.id));
    assert!(say("11", "/notices").await.contains("Storing internet Utrecht · investigating · everywhere · everywhere"));

    // Admins tune the lexicons and the places' other names from the chat too, as from the console.
    let kanaal = "/lexicon add regions Utrecht: Rijnsweerd";
    assert_eq!(say("11", kanaal).await, "Only admins change the lexicons.");
    for (bad, says) in [
        ("/lexicon", "Usage: /lexicon add|remove LANGUAGE GROUP: TERM, or undo ID"),
        ("/lexicon add nl outage glasvezel kapot", "Usage: /lexicon"),
        ("/lexicon add nl gas: lek", "The nl lexicon has no group `gas`."),
        ("/lexicon add regions Amsterdam: utreg", "“utreg” counts for regions Utrecht already."),
        ("/lexicon undo 99", "Lexicon change 99 not found."),
    ] {
        let answer = say("13", bad).await;
        assert!(answer.contains(says), "{bad}: {answer}");
    }
    assert!(store.lexicon_changes().await.unwrap().is_empty(), "nothing refused is kept");
    assert_eq!(
        say("13", kanaal).await,
        "Lexicon change 1: add “Rijnsweerd” to regions Utrecht; every instance applies it within a few seconds \
         (/lexicon undo 1 takes it back)."
    );
    assert_eq!(store.reload_generation(webcare_app::intake::RELOAD_BRIDGE_DATA).await.unwrap(), 1);
    assert!(say("13", "/lexicon undo 1").await.starts_with("Lexicon change 1 taken back"));
    assert!(store.lexicon_changes().await.unwrap().is_empty());
}
