//! The engine on an explicit clock: notice matching, clusters and their window, spike alerts against a baseline,
//! grace-period expiry, publishing a notice from a cluster, flood control, private data in public, persistence.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta};
use webcare_bridge::{Action, Classifier, Engine, EngineConfig, EngineState, Incoming, Intent, Reason};
use webcare_domain::{Notice, NoticeId, NoticeState, Service, SubscriptionTarget, Timestamp};

fn classifier() -> Arc<Classifier> {
    static C: std::sync::OnceLock<Arc<Classifier>> = std::sync::OnceLock::new();
    C.get_or_init(|| Arc::new(Classifier::default())).clone()
}

fn t0() -> Timestamp {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

fn at(minutes: i64) -> Timestamp {
    t0() + TimeDelta::minutes(minutes)
}

fn msg(id: &str, customer: &str, minutes: i64, text: &str) -> Incoming {
    Incoming {
        id: id.into(),
        customer: customer.into(),
        conversation: format!("dm-{customer}"),
        account: "kpn".into(),
        public: false,
        at: at(minutes),
        text: text.into(),
        place: None,
        language: None,
    }
}

fn engine() -> Engine {
    Engine::new(EngineConfig::default(), classifier())
}

fn notice(id: i64, services: Vec<Service>, regions: &[&str]) -> Notice {
    Notice {
        id: NoticeId(id),
        title: "storing".into(),
        state: NoticeState::Investigating,
        services,
        regions: regions.iter().map(|r| r.to_string()).collect(),
        text: "Er is een storing in Utrecht, we werken aan een oplossing.".into(),
        texts: BTreeMap::from([("en".into(), "There is an outage in Utrecht, we are working on it.".into())]),
        version: 2,
        draft: false,
        cluster: None,
        paid_broadcast: false,
        created_at: t0(),
        updated_at: t0(),
    }
}

#[test]
fn outage_in_a_notice_scope_is_answered_in_the_customers_language() {
    let mut e = engine();
    let notices = [notice(7, vec![Service::Internet], &["Utrecht"])];
    let nl = e.process(&msg("1", "a", 0, "Storing in Utrecht? Geen internet"), &notices).decision;
    assert_eq!(nl.action, Action::AutoAnswer);
    assert_eq!(nl.notice, Some(NoticeId(7)));
    assert_eq!(nl.subscribe, Some(SubscriptionTarget::Notice(NoticeId(7))));
    assert!(nl.reply.unwrap().text.starts_with("Er is een storing"));
    let en = e.process(&msg("2", "b", 1, "is the internet down in 3512?"), &notices).decision;
    assert_eq!(en.action, Action::AutoAnswer, "{:?}", en.reasons);
    assert!(en.reply.unwrap().text.starts_with("There is an outage"));
    // Another region is not covered; a nationwide notice covers every region.
    let leiden = e.process(&msg("3", "c", 2, "geen internet in Leiden"), &notices).decision;
    assert_eq!(leiden.action, Action::HoldAndSubscribe);
    let nationwide = [notice(8, vec![], &[])];
    let any = e.process(&msg("4", "d", 3, "geen internet in Leiden"), &nationwide).decision;
    assert_eq!((any.action, any.notice), (Action::AutoAnswer, Some(NoticeId(8))));
    // A resolved notice answers nobody.
    let mut resolved = notice(9, vec![], &[]);
    resolved.state = NoticeState::Resolved;
    let none = e.process(&msg("5", "e", 4, "storing in Leiden?"), &[resolved]).decision;
    assert_eq!(none.action, Action::HoldAndSubscribe);
}

#[test]
fn a_province_notice_covers_its_towns() {
    let mut e = engine();
    let notices = [notice(1, vec![], &["Noord-Brabant"])];
    let d = e.process(&msg("1", "a", 0, "storing in Den Bosch?"), &notices).decision;
    assert_eq!(d.action, Action::AutoAnswer);
    let d = e.process(&msg("2", "b", 0, "storing in Utrecht?"), &notices).decision;
    assert_eq!(d.action, Action::HoldAndSubscribe);
}

#[test]
fn a_notice_covers_the_open_clusters_in_its_scope() {
    let mut e = engine();
    let mut cluster = |id: &str, minutes: i64, text: &str| {
        let d = e.process(&msg(id, id, minutes, text), &[]).decision;
        assert_eq!(d.action, Action::HoldAndSubscribe, "{text}");
        d.cluster.unwrap()
    };
    let utrecht = cluster("1", 0, "Storing in Utrecht? Geen internet");
    let leiden = cluster("2", 1, "Geen internet in Leiden sinds vanochtend");
    let tv = cluster("3", 2, "Storing in Utrecht? Geen tv, zwart beeld");
    let nowhere = cluster("4", 3, "Storing? Geen internet, de buren ook niet");
    let den_bosch = cluster("5", 4, "Storing in Den Bosch?");
    let covered = |n: &Notice| {
        let mut ids = e.clusters_covered_by(n);
        ids.sort();
        ids
    };
    // The scope a question would be answered in: service and region; a notice with regions covers no cluster that
    // names none; a question that names no service is covered by any service's notice for its region.
    assert_eq!(covered(&notice(1, vec![Service::Internet], &["Utrecht"])), vec![utrecht]);
    assert_eq!(covered(&notice(2, vec![Service::Internet], &[])), vec![utrecht, leiden, nowhere, den_bosch]);
    assert_eq!(covered(&notice(3, vec![], &["Utrecht"])), vec![utrecht, tv]);
    assert_eq!(covered(&notice(4, vec![Service::Mobile], &["Noord-Brabant"])), vec![den_bosch]);
    let mut resolved = notice(5, vec![], &[]);
    resolved.state = NoticeState::Resolved;
    assert_eq!(covered(&resolved), Vec::new());
    let mut draft = notice(6, vec![], &[]);
    draft.draft = true;
    assert_eq!(covered(&draft), Vec::new());
    // A cluster that became a notice is covered no more.
    e.publish_notice(utrecht, NoticeId(1));
    assert_eq!(e.clusters_covered_by(&notice(1, vec![Service::Internet], &["Utrecht"])), Vec::new());
}

#[test]
fn clusters_group_by_account_service_region_and_window() {
    let mut e = engine();
    let a = e.process(&msg("1", "a", 0, "geen internet in Utrecht"), &[]).decision;
    let b = e.process(&msg("2", "b", 20, "internet ligt eruit in 3512 AB"), &[]).decision;
    assert_eq!(a.cluster, b.cluster, "same service, compatible region, inside the window");
    assert!(b.reply.is_some(), "a new member gets the holding answer");
    let again = e.process(&msg("3", "b", 21, "nog steeds geen internet in Utrecht"), &[]).decision;
    assert_eq!(again.cluster, a.cluster);
    assert!(again.reply.is_none(), "a member asking again is not sent the holding answer twice");
    let tv = e.process(&msg("4", "c", 22, "tv storing in Utrecht, zwart beeld"), &[]).decision;
    assert_ne!(tv.cluster, a.cluster, "another service is another cluster");
    let leiden = e.process(&msg("5", "d", 23, "geen internet in Leiden"), &[]).decision;
    assert_ne!(leiden.cluster, a.cluster, "another region is another cluster");
    let mut other_account = msg("6", "e", 24, "geen internet in Utrecht");
    other_account.account = "ziggo".into();
    assert_ne!(e.process(&other_account, &[]).decision.cluster, a.cluster, "clusters never span accounts");
    // The window slides from the last message: 21 + 30 = 51 still joins, later does not.
    let late = e.process(&msg("7", "f", 51, "geen internet in Utrecht"), &[]).decision;
    assert_eq!(late.cluster, a.cluster);
    let later = e.process(&msg("8", "g", 59, "storing internet Utrecht"), &[]).decision;
    assert_eq!(later.cluster, a.cluster);
}

#[test]
fn a_message_outside_the_window_starts_a_new_cluster() {
    let mut e = engine();
    let a = e.process(&msg("1", "a", 0, "geen internet in Utrecht"), &[]).decision;
    let b = e.process(&msg("2", "b", 31, "geen internet in Utrecht"), &[]).decision;
    assert_ne!(a.cluster, b.cluster);
}

#[test]
fn a_spike_alerts_once_and_again_when_doubled() {
    let mut e = engine();
    let mut alerts = Vec::new();
    for i in 0..4 {
        alerts.extend(
            e.process(&msg(&i.to_string(), &format!("c{i}"), i, "geen internet in Utrecht, bel 0612345678"), &[])
                .alerts,
        );
    }
    assert!(alerts.is_empty(), "four customers are no spike");
    alerts.extend(e.process(&msg("4", "c4", 4, "storing in Utrecht?"), &[]).alerts);
    assert_eq!(alerts.len(), 1, "the fifth customer in ten minutes raises the alert");
    let alert = &alerts[0];
    assert_eq!((alert.count, alert.service, alert.region.as_deref()), (5, Service::Internet, Some("Utrecht")));
    assert!(alert.samples.iter().all(|s| !s.contains("0612345678")), "samples are masked: {:?}", alert.samples);
    assert!(alert.draft["nl"].contains("Utrecht") && alert.draft["en"].contains("Utrecht"));
    for i in 5..9 {
        alerts.extend(e.process(&msg(&i.to_string(), &format!("c{i}"), i, "geen internet in Utrecht"), &[]).alerts);
    }
    assert_eq!(alerts.len(), 1, "growing to nine customers is not yet doubling");
    alerts.extend(e.process(&msg("9", "c9", 9, "geen internet in Utrecht"), &[]).alerts);
    assert_eq!(alerts.len(), 2, "ten customers doubles the five at the first alert");
    assert_eq!(alerts[1].count, 10);
}

#[test]
fn five_customers_spread_over_more_than_ten_minutes_are_no_spike() {
    let mut e = engine();
    let mut alerts = Vec::new();
    for i in 0..5 {
        alerts.extend(e.process(&msg(&i.to_string(), &format!("c{i}"), i * 4, "geen internet in Utrecht"), &[]).alerts);
    }
    assert!(alerts.is_empty());
}

#[test]
fn a_high_baseline_raises_the_bar() {
    let mut e = engine();
    // A week of twelve questions an hour about Leiden internet (two per ten minutes), from different customers.
    let mut n = 0;
    for hour in 0..(7 * 24 - 2) {
        for q in 0..12 {
            n += 1;
            let m = msg(&format!("h{n}"), &format!("h{hour}-{q}"), hour * 60 + q * 5, "geen internet in Leiden");
            assert!(e.process(&m, &[]).alerts.is_empty(), "the usual rate never alerts");
        }
    }
    let start = (7 * 24) * 60;
    let mut alerts = Vec::new();
    for i in 0..5 {
        alerts.extend(
            e.process(&msg(&format!("s{i}"), &format!("s{i}"), start + i, "geen internet in Leiden"), &[]).alerts,
        );
    }
    assert!(alerts.is_empty(), "five is not three times a baseline of two per ten minutes");
    alerts.extend(e.process(&msg("s5", "s5", start + 5, "geen internet in Leiden"), &[]).alerts);
    assert_eq!(alerts.len(), 1, "six is");
    assert!((alerts[0].baseline - 2.0).abs() < 0.1, "{}", alerts[0].baseline);
}

#[test]
fn a_cluster_without_notice_expires_into_tickets_after_the_grace_period() {
    let mut e = engine();
    let a = e.process(&msg("1", "a", 0, "geen internet in Utrecht"), &[]).decision;
    e.process(&msg("2", "b", 10, "geen internet in Utrecht"), &[]);
    e.process(&msg("3", "a", 12, "nog steeds geen internet in Utrecht"), &[]);
    assert!(e.tick(at(59)).is_empty(), "not before the grace period ends");
    let tickets = e.tick(at(60));
    assert_eq!(tickets.len(), 2, "one ticket per customer");
    assert!(tickets.iter().all(|d| d.action == Action::Ticket && d.cluster == a.cluster));
    assert_eq!(tickets[0].message, "3", "the customer's latest message carries the ticket");
    assert_eq!(tickets[1].message, "2");
    assert!(e.tick(at(120)).is_empty(), "an expired cluster expires once");
    // The next question starts a new cluster.
    let next = e.process(&msg("4", "c", 61, "geen internet in Utrecht"), &[]).decision;
    assert_ne!(next.cluster, a.cluster);
}

#[test]
fn expiry_also_happens_when_the_next_message_arrives() {
    let mut e = engine();
    e.process(&msg("1", "a", 0, "geen internet in Utrecht"), &[]);
    let out = e.process(&msg("2", "b", 90, "bedankt!"), &[]);
    assert_eq!(out.expired.len(), 1);
    assert_eq!(out.expired[0].at, at(60));
}

#[test]
fn publishing_a_notice_subscribes_every_member_once_and_stops_expiry() {
    let mut e = engine();
    let a = e.process(&msg("1", "a", 0, "geen internet in Utrecht"), &[]).decision;
    e.process(&msg("2", "b", 1, "storing Utrecht?"), &[]);
    e.process(&msg("3", "a", 2, "nog steeds geen internet in Utrecht"), &[]);
    let members = e.publish_notice(a.cluster.unwrap(), NoticeId(3));
    assert_eq!(members, vec![("a".to_owned(), "dm-a".to_owned()), ("b".to_owned(), "dm-b".to_owned())]);
    assert!(e.tick(at(120)).is_empty(), "a noticed cluster never turns into tickets");
}

#[test]
fn floods_are_merged_and_the_customer_told_once() {
    let mut e = engine();
    let mut decisions = Vec::new();
    for i in 0..8 {
        let mut m = msg(&i.to_string(), "a", 0, "ik wil mijn abonnement opzeggen");
        m.at = t0() + TimeDelta::seconds(i);
        decisions.push(e.process(&m, &[]).decision);
    }
    assert!(decisions[..5].iter().all(|d| !d.merged && d.action == Action::Ticket));
    assert!(decisions[5..].iter().all(|d| d.merged && d.action == Action::Ticket));
    let told: Vec<bool> = decisions[5..].iter().map(|d| d.reply.is_some()).collect();
    assert_eq!(told, [true, false, false], "told once");
    // Ten seconds after the first, the allowance is back.
    let mut m = msg("9", "a", 0, "ik wil mijn abonnement opzeggen");
    m.at = t0() + TimeDelta::seconds(11);
    assert!(!e.process(&m, &[]).decision.merged);
}

#[test]
fn private_data_in_public_moves_to_private_without_repeating_it() {
    let mut e = engine();
    let mut m = msg("1", "a", 0, "mijn IBAN is NL91ABNA0417164300, graag geld terug");
    m.public = true;
    let d = e.process(&m, &[]).decision;
    assert_eq!(d.action, Action::MovePrivate);
    assert_eq!(d.pii, ["iban"]);
    let reply = d.reply.unwrap().text;
    assert!(!reply.contains("NL91") && !reply.contains("0417164300"));
    let json = serde_json::to_string(&d.reasons).unwrap();
    assert!(!json.contains("0417164300"), "reasons never hold the data: {json}");
    m.public = false;
    m.id = "2".into();
    assert_eq!(e.process(&m, &[]).decision.action, Action::Ticket, "in private it is just a case");
}

#[test]
fn other_intents_are_ignored_and_other_languages_become_tickets() {
    let mut e = engine();
    assert_eq!(e.process(&msg("1", "a", 0, "Bedankt, fijne dag!"), &[]).decision.action, Action::Ignore);
    let d = e.process(&msg("2", "b", 0, "Bonjour, je voudrais changer mon forfait s'il vous plaît"), &[]).decision;
    assert_eq!(d.action, Action::Ticket);
}

#[test]
fn the_state_survives_a_round_trip_through_json() {
    let mut e = engine();
    let a = e.process(&msg("1", "a", 0, "geen internet in Utrecht"), &[]).decision;
    let saved = serde_json::to_string(e.state()).unwrap();
    let state: EngineState = serde_json::from_str(&saved).unwrap();
    let mut restored = Engine::with_state(EngineConfig::default(), classifier(), state);
    let b = restored.process(&msg("2", "b", 5, "geen internet in Utrecht"), &[]).decision;
    assert_eq!(a.cluster, b.cluster, "the restored engine continues the cluster");
    assert_eq!(restored.tick(at(60)).len(), 2);
}

#[test]
fn messages_without_a_place_group_only_when_both_say_the_outage_is_shared() {
    let mut e = engine();
    // Two vague complaints naming neither a place nor a shared outage stay apart.
    let a = e.process(&msg("1", "a", 0, "mijn internet werkt niet"), &[]).decision;
    let b = e.process(&msg("2", "b", 5, "mijn internet werkt niet"), &[]).decision;
    assert_eq!(a.action, Action::HoldAndSubscribe);
    assert_ne!(a.cluster, b.cluster, "vague complaints without a place are not grouped");
    // Messages that say others are affected, about the same service, are grouped even without a place.
    let c = e.process(&msg("3", "c", 6, "Storing? Geen internet, de buren ook niet"), &[]).decision;
    let d = e.process(&msg("4", "d", 8, "anyone else with no internet?"), &[]).decision;
    assert_eq!(c.cluster, d.cluster, "two reports of a shared internet outage");
    // ... but not with a shared outage of another service.
    let tv = e.process(&msg("5", "e", 9, "Storing bij meer mensen? Geen tv, zwart beeld"), &[]).decision;
    assert_ne!(tv.cluster, c.cluster);
    // A vague complaint does not join the shared cluster either.
    let f = e.process(&msg("6", "f", 10, "mijn internet werkt niet"), &[]).decision;
    assert_ne!(f.cluster, c.cluster);
    // Nor does a complaint about how often it fails: it names outages, but no current one that others share.
    let g = e.process(&msg("7", "g", 11, "Weer zoveel storingen, internet valt steeds weg"), &[]).decision;
    assert_eq!(g.action, Action::HoldAndSubscribe);
    assert_ne!(g.cluster, c.cluster);
}

#[test]
fn districts_group_with_their_city_and_a_city_notice_covers_them() {
    let mut e = engine();
    let a = e.process(&msg("1", "a", 0, "internet plat in Leidsche Rijn"), &[]).decision;
    let b = e.process(&msg("2", "b", 2, "Storing in Utrecht? geen internet"), &[]).decision;
    let c = e.process(&msg("3", "c", 4, "Ook geen internet hier in Vleuten"), &[]).decision;
    assert_eq!(a.cluster, b.cluster, "a district and its city");
    assert_eq!(a.cluster, c.cluster, "two districts of one city");
    let other = e.process(&msg("4", "d", 5, "geen internet in Amersfoort"), &[]).decision;
    assert_ne!(other.cluster, a.cluster, "another city");
    assert_eq!(e.cluster_customers(a.cluster.unwrap()), Some(3));
    // Belgian districts alike: Berchem and Borgerhout are Antwerpen.
    let x = e.process(&msg("5", "e", 6, "geen internet in Berchem"), &[]).decision;
    let y = e.process(&msg("6", "f", 7, "Ook in Borgerhout geen internet"), &[]).decision;
    let z = e.process(&msg("7", "g", 8, "internet weg in Antwerpen"), &[]).decision;
    assert_eq!(x.cluster, y.cluster);
    assert_eq!(x.cluster, z.cluster);
    // A notice for the city answers its districts; a notice for one district does not answer the others.
    let city = [notice(1, vec![], &["Utrecht"])];
    let d = e.process(&msg("8", "h", 9, "geen internet in Overvecht?"), &city).decision;
    assert_eq!(d.action, Action::AutoAnswer);
    let district = [notice(2, vec![], &["Leidsche Rijn"])];
    let d = e.process(&msg("9", "i", 10, "storing in Vleuten?"), &district).decision;
    assert_eq!(d.action, Action::HoldAndSubscribe);
    let d = e.process(&msg("10", "j", 11, "storing in Leidsche Rijn?"), &district).decision;
    assert_eq!(d.action, Action::AutoAnswer);
}

#[test]
fn a_shared_report_without_a_place_joins_the_only_outage_of_the_provider() {
    for (placed, shared, vague, other_place) in [
        ("Geen tv in Eindhoven, zwart beeld", "hier ook", "mijn tv doet raar", "geen tv in Groningen, zwart beeld"),
        ("no internet in Amsterdam since 8", "same here", "my internet is acting up", "no internet in Groningen"),
    ] {
        let mut e = engine();
        let a = e.process(&msg("1", "a", 0, placed), &[]).decision;
        let b = e.process(&msg("2", "b", 3, shared), &[]).decision;
        assert_eq!(b.cluster, a.cluster, "{shared:?} during the only open outage of the provider");
        let s = e.process(&msg("3", "c", 4, "Is er een storing?"), &[]).decision;
        assert_eq!(s.cluster, a.cluster, "a shared report naming no service");
        let v = e.process(&msg("4", "d", 5, vague), &[]).decision;
        assert_ne!(v.cluster, a.cluster, "{vague:?} does not say the outage is shared");
        let mut elsewhere = msg("5", "e", 6, shared);
        elsewhere.account = "ziggo".into();
        assert_ne!(e.process(&elsewhere, &[]).decision.cluster, a.cluster, "another provider");
        // With two outages of the provider open, a report without a place cannot tell which: it joins neither.
        let g = e.process(&msg("6", "f", 7, other_place), &[]).decision;
        assert_ne!(g.cluster, a.cluster);
        let t = e.process(&msg("7", "g", 8, shared), &[]).decision;
        assert_ne!(t.cluster, a.cluster);
        assert_ne!(t.cluster, g.cluster);
    }
}

#[test]
fn a_shared_report_that_names_no_service_joins_the_shared_cluster_without_a_place() {
    // During a burst many write only "anyone else?": the outage they mean is the one the others report.
    for (internet, first, second, shared, vague) in [
        (
            "Storing? Geen internet, de buren ook niet",
            "Is er een storing? Bij meer mensen internet weg",
            "Hebben meer mensen een storing?",
            "Is er een storing?",
            "Het werkt weer niet",
        ),
        (
            "anyone else with no internet?",
            "is the internet down for anyone else?",
            "is anyone else having an outage?",
            "outage?",
            "it doesn't work again",
        ),
    ] {
        let mut e = engine();
        let a = e.process(&msg("1", "a", 0, internet), &[]).decision;
        let b = e.process(&msg("2", "b", 2, first), &[]).decision;
        assert_eq!(a.cluster, b.cluster, "{first}");
        let c = e.process(&msg("3", "c", 4, second), &[]).decision;
        assert_eq!(c.intent, Intent::Outage, "{second}");
        assert_eq!(c.cluster, a.cluster, "{second:?} names no service and joins the internet cluster");
        let d = e.process(&msg("4", "d", 5, shared), &[]).decision;
        assert_eq!(d.cluster, a.cluster, "{shared}");
        assert_eq!(e.cluster_customers(a.cluster.unwrap()), Some(4));
        // A complaint that says neither which service nor that others have it stays on its own.
        let v = e.process(&msg("5", "e", 6, vague), &[]).decision;
        assert_ne!(v.cluster, a.cluster, "{vague}");
        // Two shared reports that both name no service do not start a cluster between them: they say too little
        // of what is down.
        let mut e = engine();
        let x = e.process(&msg("6", "f", 0, second), &[]).decision;
        let y = e.process(&msg("7", "g", 1, shared), &[]).decision;
        assert_ne!(x.cluster, y.cluster, "{second} / {shared}");
    }
}

#[test]
fn reposts_of_one_text_count_as_one_customer() {
    let mut e = engine();
    let text = "Geen internet in Utrecht sinds het ontbijt, de router knippert rood en de buren";
    let a = e.process(&msg("1", "a", 0, &format!("@kpn {text} ook")), &[]).decision;
    let b = e.process(&msg("2", "b", 2, &format!("@kpn @iemand {text} hebben hetzelfde")), &[]).decision;
    assert_eq!(a.cluster, b.cluster);
    let cluster = a.cluster.unwrap();
    assert_eq!(e.cluster_customers(cluster), Some(1), "a repost with other mentions and another ending counts once");
    assert!(b.reply.is_some(), "but the one who reposted asked too, and is answered");
    let again = e.process(&msg("3", "b", 3, &format!("{text} nog steeds")), &[]).decision;
    assert!(again.reply.is_none(), "once");
    // Each asker gets a ticket when the cluster expires without a notice, each for their latest message.
    let expired = e.tick(at(180));
    let mut tickets: Vec<(&str, &str)> = expired.iter().map(|d| (d.customer.as_str(), d.message.as_str())).collect();
    tickets.sort();
    assert_eq!(tickets, [("a", "1"), ("b", "3")]);
}

#[test]
fn a_restored_engine_still_knows_who_is_in_a_cluster() {
    // The lookups over a cluster's members are not saved with the state; a restored engine rebuilds them, so a
    // repost and a returning customer still count once, and the stored member count is right.
    let mut e = engine();
    let text = "Geen internet in Utrecht sinds het ontbijt, de router knippert rood en de buren";
    let a = e.process(&msg("1", "a", 0, &format!("@kpn {text} ook")), &[]).decision;
    e.process(&msg("2", "b", 1, "storing in Utrecht? geen internet"), &[]);
    let state: EngineState = serde_json::from_str(&serde_json::to_string(e.state()).unwrap()).unwrap();
    let mut restored = Engine::with_state(EngineConfig::default(), classifier(), state);
    let repost = restored.process(&msg("3", "c", 2, &format!("@kpn @iemand {text} hebben hetzelfde")), &[]).decision;
    assert_eq!(repost.cluster, a.cluster);
    assert!(repost.reply.is_some(), "a repost after the restart counts as the first customer, and is answered");
    let again = restored.process(&msg("4", "b", 3, "nog steeds geen internet in Utrecht"), &[]).decision;
    assert!(again.reply.is_none(), "a customer asking again gets no second holding answer");
    let fresh = restored.process(&msg("5", "d", 4, "internet storing Utrecht?"), &[]).decision;
    assert!(fresh.reply.is_some());
    assert_eq!(restored.cluster_customers(a.cluster.unwrap()), Some(3), "a, b and d");
}

#[test]
fn customers_idle_for_a_flood_window_leave_the_state() {
    // The state holds customers of the last flood window only, so that saving it stays cheap however many
    // customers wrote before; a customer who comes back starts afresh, with the same decisions.
    let mut e = engine();
    for i in 0..50 {
        e.process(&msg(&i.to_string(), &format!("c{i}"), 0, "ik wil mijn abonnement opzeggen"), &[]);
    }
    assert_eq!(e.state().customers.len(), 50);
    e.process(&msg("late", "z", 1, "bedankt"), &[]);
    assert_eq!(e.state().customers.keys().collect::<Vec<_>>(), ["z"], "only the customer of the last window");
    // A flood still counts within its window, trimmed or not.
    let mut decisions = Vec::new();
    for i in 0..7 {
        let mut m = msg(&format!("f{i}"), "c1", 2, "ik wil mijn abonnement opzeggen");
        m.at = at(2) + TimeDelta::seconds(i);
        decisions.push(e.process(&m, &[]).decision.merged);
    }
    assert_eq!(decisions, [false, false, false, false, false, true, true]);
}

/// The acknowledgement's due time reads as a customer would say it, in Dutch and in English.
#[test]
fn a_due_time_reads_as_today_tomorrow_or_a_named_day() {
    use webcare_bridge::engine::LocalDue;
    let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    let due = |d: u32, h: u32, m: u32| LocalDue { at: day(d).and_hms_opt(h, m, 40).unwrap(), today: day(27) };
    // Friday 27 November 2026.
    assert_eq!(due(27, 16, 5).phrase("nl"), "vandaag vóór 16:05");
    assert_eq!(due(27, 16, 5).phrase("en"), "by 16:05 today");
    assert_eq!(due(28, 9, 0).phrase("nl"), "morgen vóór 09:00");
    assert_eq!(due(28, 9, 0).phrase("en"), "by 09:00 tomorrow");
    assert_eq!(due(30, 8, 30).phrase("nl"), "maandag 30 november vóór 08:30");
    assert_eq!(due(30, 8, 30).phrase("en"), "by 08:30 on Monday 30 November");
    assert_eq!(due(30, 8, 30).phrase("de"), "by 08:30 on Monday 30 November", "other languages read the English form");
    let next_month =
        LocalDue { at: day(1).and_hms_opt(8, 0, 0).unwrap() + chrono::TimeDelta::days(30), today: day(27) };
    assert_eq!(next_month.phrase("nl"), "dinsdag 1 december vóór 08:00");
}

/// When the first asker names no service ("storing in Utrecht?"), the cluster is about the service the next ones
/// name: they join it rather than start a second cluster beside it, and the alert counts them all.
#[test]
fn a_cluster_begun_without_a_service_takes_the_first_service_named() {
    let mut e = engine();
    let first = e.process(&msg("1", "a", 0, "storing in Utrecht?"), &[]).decision;
    let id = first.cluster.expect("a cluster");
    assert_eq!(e.cluster(id).unwrap().service, Service::Unknown);
    let mut alerts = Vec::new();
    for i in 1..5 {
        let d = e.process(&msg(&i.to_string(), &format!("c{i}"), i, "geen internet in Utrecht"), &[]);
        assert_eq!(d.decision.cluster, Some(id), "{i}");
        alerts.extend(d.alerts);
    }
    assert_eq!(e.cluster(id).unwrap().service, Service::Internet);
    assert_eq!(alerts.len(), 1, "five customers in one cluster: one alert");
    assert_eq!((alerts[0].count, alerts[0].service), (5, Service::Internet));
    // Now it is the internet cluster: a TV outage in Utrecht is another one.
    let tv = e.process(&msg("5", "d", 6, "tv storing in Utrecht, zwart beeld"), &[]).decision;
    assert_ne!(tv.cluster, Some(id));

    // Without a place, among reports that say the outage is shared.
    let mut e = engine();
    let a = e.process(&msg("1", "a", 0, "Is er een storing? Bij meer mensen internet weg"), &[]).decision;
    let shared = e.process(&msg("2", "b", 1, "is anyone else having an outage?"), &[]).decision;
    assert_eq!(shared.cluster, a.cluster, "a shared report naming no service joins");
    let mut e = engine();
    let first = e.process(&msg("1", "a", 0, "is anyone else having an outage?"), &[]).decision;
    let named = e.process(&msg("2", "b", 1, "anyone else with no internet?"), &[]).decision;
    assert_eq!(named.cluster, first.cluster, "the first shared report naming a service joins and names it");
    assert_eq!(e.cluster(first.cluster.unwrap()).unwrap().service, Service::Internet);
    let vague = e.process(&msg("3", "c", 2, "mijn internet werkt niet"), &[]).decision;
    assert_ne!(vague.cluster, first.cluster, "a complaint that does not say others have it stays apart");
}

#[test]
fn words_webcare_cannot_read_in_a_private_chat_go_to_a_person_and_in_public_are_left_alone() {
    let mut e = engine();
    for (id, text) in [
        ("1", "Ik snap de brief niet die ik kreeg"),
        ("2", "I do not understand the letter I got"),
        ("8", "Hallo, ik heb een probleem met mijn mail"),
        ("9", "Hoe laat is de winkel in Utrecht open?"),
    ] {
        let d = e.process(&msg(id, &format!("c{id}"), 0, text), &[]).decision;
        assert_eq!(d.action, Action::Ticket, "{text}: {:?}", d.reasons);
        assert!(
            d.reasons.iter().any(|r| matches!(r, Reason::Rule { rule } if rule == "private-unread-ticket")),
            "{text}: {:?}",
            d.reasons
        );
    }
    // Thanks, a greeting or a lone symbol in private stay without action; so do unread words in public.
    for (id, text) in
        [("3", "Bedankt!"), ("4", "hoi"), ("5", "?"), ("6", "ok"), ("10", "ok dan"), ("11", "fijne dag nog")]
    {
        assert_eq!(e.process(&msg(id, &format!("c{id}"), 0, text), &[]).decision.action, Action::Ignore, "{text}");
    }
    let mut public = msg("7", "c7", 0, "Ik snap de brief niet die ik kreeg");
    public.public = true;
    assert_eq!(e.process(&public, &[]).decision.action, Action::Ignore, "in public it is left alone");
}
