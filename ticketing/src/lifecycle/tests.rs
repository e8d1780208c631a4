//! The lifecycle rules on tickets in memory: the transition table, claims and their lapse, reopening, SLA fields.

use chrono::{Duration, TimeZone, Utc};
use webcare_domain::{ConversationId, CustomerId, Platform, TicketId};

use super::*;
use crate::{SlaPolicy, WeekHours};

use TicketState::*;

fn t0() -> Timestamp {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

fn mins(m: i64) -> Timestamp {
    t0() + Duration::minutes(m)
}

/// Around the clock in UTC, so that due times are plain arithmetic here; business hours have their own tests.
fn policy() -> TicketPolicy {
    TicketPolicy {
        sla: SlaPolicy { timezone: chrono_tz::UTC, hours: WeekHours::always(), ..SlaPolicy::default() },
        claim_lapse_mins: 30,
        auto_close_hours: 72,
        default_priority: 3,
    }
}

fn staff(id: i64, role: Role) -> Agent {
    Agent { id: AgentId(id), name: format!("agent{id}"), role, password_hash: None, active: true, created_at: t0() }
}

fn ticket(state: TicketState) -> Ticket {
    let p = policy();
    Ticket {
        id: TicketId(1),
        conversation: ConversationId(1),
        customer: CustomerId(1),
        state,
        subject: "internet stuk".into(),
        priority: 3,
        category: "technical".into(),
        assignee: None,
        created_at: t0(),
        updated_at: t0(),
        due_at: Some(p.sla.first_response_due(t0(), 3)),
        platform: Platform::Telegram,
        tags: vec![],
        claimed_by: None,
        claimed_at: None,
        last_activity_at: None,
        first_response_due_at: Some(p.sla.first_response_due(t0(), 3)),
        resolution_due_at: Some(p.sla.resolution_due(t0(), 3)),
        first_responded_at: None,
        solved_at: None,
        closed_at: None,
        version: 0,
    }
}

fn kinds(c: &Change) -> Vec<TicketEventKind> {
    c.events.iter().map(|e| e.kind).collect()
}

fn held_by(holder: AgentId) -> impl Fn(&Result<(), TicketError>) -> bool {
    move |r| matches!(r, Err(TicketError::AlreadyClaimed { holder: h, .. }) if *h == holder)
}

#[test]
fn the_transition_table_is_exactly_this() {
    use By::{Admin as Adm, Agent as Agt, Customer as Cus, System as Sys};
    let allowed: &[(TicketState, TicketState, &[By])] = &[
        (New, Open, &[Agt, Adm]),
        (New, Pending, &[Agt, Adm]),
        (New, Solved, &[Agt, Adm]),
        (New, Closed, &[Adm]),
        (Open, New, &[Adm]),
        (Open, Pending, &[Agt, Adm]),
        (Open, Solved, &[Agt, Adm]),
        (Open, Closed, &[Adm]),
        (Pending, New, &[Adm, Cus]),
        (Pending, Open, &[Agt, Adm, Cus]),
        (Pending, Solved, &[Agt, Adm]),
        (Pending, Closed, &[Adm]),
        (Solved, New, &[Adm, Cus]),
        (Solved, Open, &[Agt, Adm, Cus]),
        (Solved, Pending, &[Agt, Adm]),
        (Solved, Closed, &[Adm, Sys]),
    ];
    let mut checked = 0;
    for &from in TicketState::ALL {
        for &to in TicketState::ALL {
            for by in [Agt, Adm, Cus, Sys] {
                let expected = allowed.iter().any(|(f, t, who)| (*f, *t) == (from, to) && who.contains(&by));
                assert_eq!(may_transition(from, to, by), expected, "{from} → {to} by {by:?}");
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 100);
}

#[test]
fn refusals_say_whether_an_admin_could() {
    let cases = [
        (New, Closed, By::Agent, "not allowed"),
        (Open, New, By::Agent, "not allowed"),
        (Closed, Open, By::Admin, "invalid"),
        (Open, Closed, By::Customer, "invalid"),
        (Pending, Closed, By::System, "invalid"),
        (Open, Open, By::Agent, "ok"),
        (Solved, Open, By::Customer, "ok"),
    ];
    for (from, to, by, expected) in cases {
        let got = match check_transition(from, to, by) {
            Ok(()) => "ok",
            Err(TicketError::NotAllowed { .. }) => "not allowed",
            Err(TicketError::InvalidTransition { from: f, to: t }) => {
                assert_eq!((f, t), (from, to));
                "invalid"
            }
            Err(e) => panic!("unexpected {e}"),
        };
        assert_eq!(got, expected, "{from} → {to} by {by:?}");
    }
}

#[test]
fn a_reply_to_a_new_ticket_claims_opens_and_records_the_first_response() {
    let p = policy();
    let sam = staff(1, Role::Agent);
    let mut c = Change::new(&ticket(New));
    reply(&mut c, &sam, "  Wij kijken ernaar. ", mins(10), &p).unwrap();
    let t = &c.ticket;
    assert_eq!(kinds(&c), [TicketEventKind::Claimed, TicketEventKind::StateChanged, TicketEventKind::Reply]);
    assert_eq!(c.events[2].body, "Wij kijken ernaar.");
    assert_eq!((t.state, t.assignee, t.claimed_by), (Open, Some(sam.id), Some(sam.id)));
    assert_eq!(
        (t.claimed_at, t.last_activity_at, t.first_responded_at),
        (Some(mins(10)), Some(mins(10)), Some(mins(10)))
    );
    assert_eq!(t.due_at, t.resolution_due_at, "after the first response the resolution is what is due");
    assert_eq!(t.updated_at, mins(10));

    // A second reply keeps the first response time and adds no claim event.
    let mut c2 = Change::new(&c.ticket);
    reply(&mut c2, &sam, "Nog iets?", mins(20), &p).unwrap();
    assert_eq!(kinds(&c2), [TicketEventKind::Reply]);
    assert_eq!(c2.ticket.first_responded_at, Some(mins(10)));
    assert_eq!(c2.ticket.last_activity_at, Some(mins(20)));
}

#[test]
fn empty_replies_and_notes_are_refused() {
    let p = policy();
    let sam = staff(1, Role::Agent);
    for text in ["", "   \n"] {
        assert!(matches!(
            reply(&mut Change::new(&ticket(New)), &sam, text, t0(), &p),
            Err(TicketError::Invalid { field: "text", .. })
        ));
        assert!(matches!(
            note(&mut Change::new(&ticket(New)), &sam, text, t0(), &p),
            Err(TicketError::Invalid { field: "text", .. })
        ));
    }
}

#[test]
fn a_claim_keeps_others_out_until_it_lapses_and_the_holders_actions_renew_it() {
    let p = policy();
    let (sam, kim) = (staff(1, Role::Agent), staff(2, Role::Agent));
    let mut c = Change::new(&ticket(New));
    reply(&mut c, &sam, "hallo", mins(0), &p).unwrap();
    let held = c.ticket.clone();

    // Kim is kept out of everything but notes while Sam's claim is live.
    let blocked = held_by(sam.id);
    assert!(blocked(&reply(&mut Change::new(&held), &kim, "ik neem het", mins(29), &p)));
    assert!(blocked(&set_state(&mut Change::new(&held), &kim, Pending, mins(29), &p)));
    assert!(blocked(&set_priority(&mut Change::new(&held), &kim, 1, mins(29), &p)));
    assert!(blocked(&change_tags(&mut Change::new(&held), &kim, &["modem"], &[], mins(29), &p)));
    assert!(blocked(&release(&mut Change::new(&held), &kim, mins(29), &p)));
    note(&mut Change::new(&held), &kim, "klant belde ook", mins(29), &p).unwrap();
    assert_eq!(p.live_holder(&held, mins(29)), Some(sam.id));

    // Sam's note at 20 minutes renews the claim: at 40 minutes it still holds.
    let mut renewed = Change::new(&held);
    note(&mut renewed, &sam, "wacht op monteur", mins(20), &p).unwrap();
    assert_eq!(renewed.ticket.last_activity_at, Some(mins(20)));
    assert!(blocked(&reply(&mut Change::new(&renewed.ticket), &kim, "x", mins(40), &p)));

    // Thirty idle minutes after Sam's last action the claim has lapsed and Kim's reply takes it.
    assert_eq!(p.live_holder(&renewed.ticket, mins(50)), None);
    let mut taken = Change::new(&renewed.ticket);
    reply(&mut taken, &kim, "ik neem het over", mins(50), &p).unwrap();
    assert_eq!(kinds(&taken), [TicketEventKind::Claimed, TicketEventKind::Reply]);
    assert_eq!((taken.ticket.claimed_by, taken.ticket.assignee), (Some(kim.id), Some(kim.id)));
    assert_eq!(taken.ticket.claimed_at, Some(mins(50)));
}

#[test]
fn admins_act_on_held_tickets_and_only_admins_take_over() {
    let p = policy();
    let (sam, kim, ada) = (staff(1, Role::Agent), staff(2, Role::Agent), staff(9, Role::Admin));
    let mut c = Change::new(&ticket(New));
    reply(&mut c, &sam, "hallo", mins(0), &p).unwrap();
    let held = c.ticket;

    // An admin changes details without taking the claim.
    let mut prio = Change::new(&held);
    set_priority(&mut prio, &ada, 1, mins(5), &p).unwrap();
    assert_eq!((prio.ticket.priority, prio.ticket.claimed_by), (1, Some(sam.id)));

    assert!(matches!(
        take_over(&mut Change::new(&held), &kim, mins(5), &p),
        Err(TicketError::NotAllowed { action: "take over", .. })
    ));
    let mut over = Change::new(&held);
    take_over(&mut over, &ada, mins(5), &p).unwrap();
    assert_eq!(kinds(&over), [TicketEventKind::TakenOver]);
    assert_eq!(over.events[0].body, "1", "the event names the previous holder");
    assert_eq!((over.ticket.claimed_by, over.ticket.assignee), (Some(ada.id), Some(ada.id)));
    assert!(held_by(ada.id)(&reply(&mut Change::new(&over.ticket), &sam, "x", mins(6), &p)));
}

#[test]
fn a_deactivated_agent_can_do_nothing() {
    let p = policy();
    let mut gone = staff(1, Role::Agent);
    gone.active = false;
    let refused = |r: Result<(), TicketError>| matches!(r, Err(TicketError::NotAllowed { .. }));
    assert!(refused(reply(&mut Change::new(&ticket(New)), &gone, "x", t0(), &p)));
    assert!(refused(note(&mut Change::new(&ticket(New)), &gone, "x", t0(), &p)));
    assert!(refused(set_state(&mut Change::new(&ticket(Open)), &gone, Pending, t0(), &p)));
}

#[test]
fn a_customer_message_reopens_by_the_table() {
    let p = policy();
    let sam = AgentId(1);
    // (state, assignee) → state after the customer writes.
    let cases = [
        (New, None, New),
        (Open, Some(sam), Open),
        (Pending, Some(sam), Open),
        (Pending, None, New),
        (Solved, Some(sam), Open),
        (Solved, None, New),
    ];
    for (state, assignee, expected) in cases {
        let mut before = ticket(state);
        before.assignee = assignee;
        if state == Solved {
            before.solved_at = Some(mins(5));
        }
        let mut c = Change::new(&before);
        customer_message(&mut c, "doet het nog steeds niet", mins(60), &p).unwrap();
        assert_eq!(c.ticket.state, expected, "{state} with {assignee:?}");
        assert_eq!(c.events[0].kind, TicketEventKind::CustomerMessage);
        assert_eq!(c.events[0].actor, None);
        let reopened = state != expected;
        assert_eq!(c.events.len(), if reopened { 2 } else { 1 }, "{state}");
        if state == Solved {
            assert_eq!(c.ticket.solved_at, None);
            assert_eq!(c.ticket.resolution_due_at, Some(p.sla.resolution_due(mins(60), 3)), "a fresh window");
        }
    }
    let mut closed = Change::new(&ticket(Closed));
    assert!(matches!(customer_message(&mut closed, "hallo?", t0(), &p), Err(TicketError::Closed(_))));
}

#[test]
fn solving_ends_the_claim_and_the_sweep_closes_after_the_configured_time() {
    let p = policy();
    let sam = staff(1, Role::Agent);
    let mut c = Change::new(&ticket(New));
    reply(&mut c, &sam, "opgelost?", mins(0), &p).unwrap();
    set_state(&mut c, &sam, Solved, mins(1), &p).unwrap();
    let solved = c.ticket;
    assert_eq!((solved.state, solved.solved_at, solved.due_at), (Solved, Some(mins(1)), None));
    assert_eq!((solved.claimed_by, solved.assignee), (None, Some(sam.id)));

    let mut early = Change::new(&solved);
    auto_close(&mut early, mins(1) + Duration::hours(72) - Duration::milliseconds(1), &p);
    assert!(early.events.is_empty());
    let mut due = Change::new(&solved);
    auto_close(&mut due, mins(1) + Duration::hours(72), &p);
    assert_eq!((due.ticket.state, due.ticket.closed_at), (Closed, Some(mins(1) + Duration::hours(72))));
    assert_eq!(
        (due.events[0].kind, due.events[0].actor, due.events[0].body.as_str()),
        (TicketEventKind::StateChanged, None, "closed")
    );

    // Closed is final, for admins too, and a closed ticket takes no replies.
    let ada = staff(9, Role::Admin);
    assert!(matches!(
        set_state(&mut Change::new(&due.ticket), &ada, Open, mins(5000), &p),
        Err(TicketError::InvalidTransition { from: Closed, to: Open })
    ));
    assert!(matches!(reply(&mut Change::new(&due.ticket), &sam, "x", mins(5000), &p), Err(TicketError::Closed(_))));
}

#[test]
fn setting_pending_on_a_new_ticket_claims_it_first() {
    let p = policy();
    let sam = staff(1, Role::Agent);
    let mut c = Change::new(&ticket(New));
    set_state(&mut c, &sam, Pending, mins(3), &p).unwrap();
    assert_eq!(kinds(&c), [TicketEventKind::Claimed, TicketEventKind::StateChanged, TicketEventKind::StateChanged]);
    let bodies: Vec<_> = c.events.iter().skip(1).map(|e| e.body.as_str()).collect();
    assert_eq!(bodies, ["open", "pending"]);
    assert_eq!((c.ticket.state, c.ticket.claimed_by), (Pending, Some(sam.id)));
}

#[test]
fn release_and_unassign_return_an_open_ticket_to_the_queue() {
    let p = policy();
    let (sam, kim, ada) = (staff(1, Role::Agent), staff(2, Role::Agent), staff(9, Role::Admin));
    let mut c = Change::new(&ticket(New));
    reply(&mut c, &sam, "hallo", mins(0), &p).unwrap();
    let open = c.ticket;

    let mut released = Change::new(&open);
    release(&mut released, &sam, mins(1), &p).unwrap();
    assert_eq!(kinds(&released), [TicketEventKind::Released, TicketEventKind::StateChanged]);
    assert_eq!((released.ticket.state, released.ticket.assignee, released.ticket.claimed_by), (New, None, None));

    // Once Sam's claim lapsed Kim still may not release Sam's ticket; an admin may.
    assert!(matches!(
        release(&mut Change::new(&open), &kim, mins(100), &p),
        Err(TicketError::NotAllowed { action: "release", .. })
    ));
    release(&mut Change::new(&open), &ada, mins(1), &p).unwrap();

    // Transfer: Kim gets the claim with a fresh window; unassigning returns the ticket to the queue.
    let mut moved = Change::new(&open);
    assign(&mut moved, &sam, Some(&kim), mins(10), &p).unwrap();
    assert_eq!((moved.ticket.assignee, moved.ticket.claimed_by), (Some(kim.id), Some(kim.id)));
    assert_eq!((moved.ticket.claimed_at, moved.events[0].body.as_str()), (Some(mins(10)), "2"));
    assert!(held_by(kim.id)(&reply(&mut Change::new(&moved.ticket), &sam, "x", mins(11), &p)));
    let mut none = Change::new(&moved.ticket);
    assign(&mut none, &ada, None, mins(12), &p).unwrap();
    assert_eq!((none.ticket.state, none.ticket.assignee, none.ticket.claimed_by), (New, None, None));

    let mut retired = staff(3, Role::Agent);
    retired.active = false;
    assert!(matches!(
        assign(&mut Change::new(&open), &sam, Some(&retired), mins(1), &p),
        Err(TicketError::NotAllowed { action: "assign", .. })
    ));
}

#[test]
fn priority_changes_move_the_due_times_and_are_checked() {
    let p = policy();
    let ada = staff(9, Role::Admin);
    let mut c = Change::new(&ticket(New));
    set_priority(&mut c, &ada, 1, mins(5), &p).unwrap();
    assert_eq!(c.ticket.first_response_due_at, Some(t0() + Duration::minutes(30)));
    assert_eq!(c.ticket.resolution_due_at, Some(t0() + Duration::minutes(240)));
    assert_eq!(c.ticket.due_at, c.ticket.first_response_due_at);
    assert_eq!((c.events[0].kind, c.events[0].body.as_str()), (TicketEventKind::PriorityChanged, "1"));
    for bad in [0, 5, -1] {
        assert!(matches!(
            set_priority(&mut Change::new(&ticket(New)), &ada, bad, t0(), &p),
            Err(TicketError::Invalid { field: "priority", .. })
        ));
    }
    // Setting the same priority records nothing.
    let mut same = Change::new(&ticket(New));
    set_priority(&mut same, &ada, 3, t0(), &p).unwrap();
    assert!(same.events.is_empty());
}

#[test]
fn tags_are_normalised_and_recorded_as_a_list() {
    let p = policy();
    let sam = staff(1, Role::Agent);
    let mut c = Change::new(&ticket(New));
    change_tags(&mut c, &sam, &[" Modem ", "glas  vezel", "modem"], &[], t0(), &p).unwrap();
    assert_eq!(c.ticket.tags, ["modem", "glas-vezel"]);
    assert_eq!(c.events[0].body, r#"["modem","glas-vezel"]"#);
    assert_eq!(c.ticket.claimed_by, None, "details do not take the claim");
    change_tags(&mut c, &sam, &["MODEM"], &[], t0(), &p).unwrap();
    assert_eq!(c.events.len(), 1, "adding a tag that is there changes nothing");
    change_tags(&mut c, &sam, &[], &["modem"], t0(), &p).unwrap();
    assert_eq!(c.ticket.tags, ["glas-vezel"]);
    assert!(matches!(normalise_tag("   "), Err(TicketError::Invalid { .. })));
    assert!(normalise_tag(&"x".repeat(41)).is_err());
}

#[test]
fn subjects_come_from_the_first_line_cut_at_a_character() {
    assert_eq!(subject("  Mijn factuur klopt niet\nklantnummer 123"), "Mijn factuur klopt niet");
    assert_eq!(subject(""), "(no text)");
    let long = "é".repeat(100);
    let s = subject(&long);
    assert_eq!(s.chars().count(), 81);
    assert!(s.ends_with('…'));
}

#[test]
fn new_tickets_get_due_times_from_the_policy() {
    let p = policy();
    let msg = crate::CustomerMessage {
        conversation: ConversationId(4),
        customer: CustomerId(5),
        text: "tv doet het niet",
        category: "technical",
        priority: None,
    };
    let (new, events) = new_ticket(&msg, t0(), &p).unwrap();
    assert_eq!(new.priority, 3);
    assert_eq!(new.first_response_due_at, Some(t0() + Duration::minutes(240)));
    assert_eq!(new.resolution_due_at, Some(t0() + Duration::minutes(1440)));
    assert_eq!(new.due_at, new.first_response_due_at);
    assert_eq!((events[0].kind, events[0].body.as_str()), (TicketEventKind::CustomerMessage, "tv doet het niet"));
    let urgent = crate::CustomerMessage { priority: Some(1), ..msg };
    assert_eq!(new_ticket(&urgent, t0(), &p).unwrap().0.first_response_due_at, Some(t0() + Duration::minutes(30)));
    assert!(new_ticket(&crate::CustomerMessage { priority: Some(9), ..msg }, t0(), &p).is_err());
}
