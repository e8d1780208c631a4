//! End-to-end tests of the Discord adapter: the real adapter (serenity over HTTP and WebSocket) against the fake
//! Discord, with a real intake pipeline and delivery engine over a fresh SQLite database. People act on the fake's
//! user side; the tests read back what the bot sent there and what webcare stored.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use webcare_app::delivery::{Delivery, DeliveryConfig};
use webcare_app::intake::{IntakeConfig, Pipeline, TALK_TO_PERSON};
use webcare_discord::{DiscordSender, DiscordSettings};
use webcare_domain::{
    ConversationKind, InboundId, Intake, NewNotice, NewOutbox, NoticeState, OutboxId, OutboxState, Platform, Priority,
    Service, Store, Ticket, TicketEventKind,
};
use webcare_fake_discord::{
    ChannelId, Config, FakeDiscord, Fault, GuildId, NewGuild, NewUser, Scope, SlashCommand, message_flags, routes,
};
use webcare_tests::TestDb;

/// Long enough for a loaded machine; every wait ends as soon as its condition holds.
const WAIT: Duration = Duration::from_secs(15);

const IBAN: &str = "NL91ABNA0417164300";

struct Env {
    dc: FakeDiscord,
    db: TestDb,
    store: Arc<dyn Store>,
    sender: DiscordSender,
    wake: Arc<Notify>,
    guild: GuildId,
    support: ChannelId,
    general: ChannelId,
    news: ChannelId,
    /// How many commands the staff desk has, each a slash command in the team's server.
    desk_commands: usize,
    /// The webcare team's channel (`discord.staff_channels`), and its conversation.
    team: ChannelId,
    team_conversation: webcare_domain::ConversationId,
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Env {
    async fn start(guild: NewGuild) -> Env {
        Self::start_with(guild, Config::default()).await
    }

    async fn start_with(guild: NewGuild, config: Config) -> Env {
        let dc = FakeDiscord::start_with(config).await;
        let guild = dc.create_guild(guild);
        let support = dc.create_text_channel(guild, "support");
        let general = dc.create_text_channel(guild, "general");
        let news = dc.create_announcement_channel(guild, "storingen");
        let team = dc.create_text_channel(guild, "webcare-team");

        let db = TestDb::sqlite().await;
        let app = webcare_tests::app(db.db()).await;
        let (store, wake) = (app.store.clone(), app.wake.clone());
        let intake: Arc<dyn Intake> = app.pipeline.clone();
        let shutdown = CancellationToken::new();
        // The team's channel, registered as serve registers it, with the staff desk behind it.
        let team_conversation = store
            .upsert_conversation(
                webcare_domain::NewConversation {
                    platform: Platform::Discord,
                    platform_chat_id: team.to_string(),
                    kind: ConversationKind::Public,
                    title: Some("staff".into()),
                },
                Utc::now(),
            )
            .await
            .expect("the staff channel is registered")
            .id;
        let desk = webcare_app::staff::Desk::new(
            store.clone(),
            app.ticketing,
            app.notices,
            wake.clone(),
            [(Platform::Discord, team.to_string(), team_conversation)],
        );
        let desk_commands = webcare_domain::StaffDesk::commands(&desk).len();
        let settings = DiscordSettings {
            token: dc.token(),
            api_url: Some(dc.api_url()),
            support_channels: vec![support.0],
            announcement_channels: vec![news.0, general.0],
            delete_private_data: true,
            staff_channels: vec![team.0],
            staff_desk: Some(Arc::new(desk)),
            shards: 1,
            shard_span: (0, 0),
        };
        let (sender, gateway) =
            webcare_discord::start(settings, intake, shutdown.clone()).await.expect("the Discord adapter starts");
        let delivery = Arc::new(Delivery::new(
            store.clone(),
            vec![Arc::new(sender.clone())],
            DeliveryConfig { poll_interval: Duration::from_millis(50), ..DeliveryConfig::default() },
        ));
        let run = {
            let (delivery, shutdown) = (delivery.clone(), shutdown.clone());
            tokio::spawn(async move { delivery.run(shutdown).await })
        };
        // The pipeline wakes its own Notify; pass that on to the delivery engine.
        let forward = {
            let (wake, waker, shutdown) = (wake.clone(), delivery.waker(), shutdown.clone());
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = wake.notified() => waker.notify_one(),
                    }
                }
            })
        };
        assert!(dc.wait_until(WAIT, || dc.ready_connections() == 1).await, "the bot connected to the gateway");
        assert!(dc.wait_until(WAIT, || dc.commands(None).len() == 3).await, "the slash commands are registered");
        // The team's server gets the desk's commands once its GUILD_CREATE has come.
        assert!(
            dc.wait_until(WAIT, || dc.commands(Some(guild)).len() == desk_commands).await,
            "the staff commands are registered in the team's server"
        );
        Env {
            dc,
            db,
            store,
            sender,
            wake,
            guild,
            support,
            general,
            news,
            team,
            team_conversation,
            desk_commands,
            shutdown,
            tasks: vec![gateway, run, forward],
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let _ = tokio::time::timeout(WAIT, t).await;
        }
        self.dc.shutdown().await;
        drop(self.db);
    }

    /// Queues a reply the way an agent's reply is queued: to the ticket's conversation, at agent priority.
    async fn agent_reply(&self, ticket: &Ticket, key: &str, text: &str) -> OutboxId {
        let now = Utc::now();
        let new = NewOutbox::message(ticket.conversation, text, key, Priority::AGENT_REPLY, now);
        let row = self.store.enqueue(new, now).await.expect("enqueue").into_inner();
        self.wake.notify_one();
        row.id
    }

    async fn tickets(&self) -> Vec<Ticket> {
        self.store.tickets(&[]).await.expect("tickets")
    }

    async fn stored_messages(&self) -> Vec<webcare_domain::InboundMessage> {
        self.store.inbound_after(InboundId(0), 1000).await.expect("inbound")
    }

    async fn conversation_of(&self, channel: ChannelId) -> Option<webcare_domain::Conversation> {
        self.store.conversation_by_chat(Platform::Discord, &channel.to_string()).await.expect("conversation")
    }

    /// A new agent, as `webcare agent add` makes one.
    async fn agent(&self, name: &str) -> webcare_domain::Agent {
        let new = webcare_domain::NewAgent {
            name: name.into(),
            role: webcare_domain::Role::Agent,
            password_hash: None,
            at: Utc::now(),
        };
        self.store.create_agent(new).await.expect("an agent")
    }

    fn bot_texts(&self, channel: ChannelId) -> Vec<String> {
        self.dc.visible_bot_messages(channel).into_iter().map(|m| m.content).collect()
    }
}

/// Waits until an async condition on webcare's database holds, checking every 20 ms; false after [`WAIT`].
async fn eventually<F, Fut>(mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if condition().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn no_mentions_allowed(m: &webcare_fake_discord::BotMessage) {
    let allowed = m.allowed_mentions.as_ref().expect("allowed_mentions is sent");
    assert_eq!(allowed["parse"], json!([]), "{allowed}");
    assert!(allowed["users"].as_array().is_none_or(Vec::is_empty), "{allowed}");
    assert!(allowed["roles"].as_array().is_none_or(Vec::is_empty), "{allowed}");
    assert!(m.pings.none(), "nobody is pinged: {:?}", m.pings);
}

fn utrecht_notice() -> NewNotice {
    NewNotice {
        title: "Storing Utrecht".into(),
        text: "We are fixing an internet outage in Utrecht.".into(),
        texts: BTreeMap::from([("nl".into(), "We verhelpen een internetstoring in Utrecht.".into())]),
        services: vec![Service::Internet],
        regions: vec!["Utrecht".into()],
        state: NoticeState::Identified,
        draft: false,
        paid_broadcast: false,
        cluster: None,
        author: None,
        approved_by: None,
        at: Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_question_in_a_support_channel_gets_the_active_notice_and_a_button_to_a_person() {
    let env = Env::start(NewGuild::named("Ziggo")).await;
    let dc = &env.dc;
    env.store.create_notice(utrecht_notice()).await.unwrap();
    let registered: BTreeSet<String> =
        dc.commands(None).iter().filter_map(|c| c["name"].as_str().map(str::to_owned)).collect();
    assert_eq!(registered, BTreeSet::from(["status".into(), "stop".into(), "ticket".into()]));

    let alice = dc.create_user(NewUser::named("alice"));
    dc.post_text(alice, env.support, "Is er een storing in Utrecht? Geen internet sinds 10 uur");
    assert!(dc.wait_until(WAIT, || dc.visible_bot_messages(env.support).len() == 1).await);
    let answer = dc.visible_bot_messages(env.support).remove(0);
    assert_eq!(answer.content, "We verhelpen een internetstoring in Utrecht.");
    assert_eq!(answer.custom_ids(), vec![format!("{TALK_TO_PERSON}:nl")]);
    no_mentions_allowed(&answer);
    assert!(env.tickets().await.is_empty(), "a known outage needs no ticket");

    // "Something else? Talk to a person": the press is acknowledged and a ticket opens.
    let press = dc.press_button(alice, env.support, answer.message_id, &format!("{TALK_TO_PERSON}:nl"));
    assert!(
        dc.wait_until(WAIT, || dc.interaction(press.interaction_id).and_then(|i| i.response_type()) == Some(6)).await
    );
    // A personal case in a public channel continues in private: a public pointer, then the DM.
    assert!(dc.wait_until(WAIT, || dc.visible_bot_messages(env.support).len() == 2).await);
    // In Dutch, as the button was offered (her question was Dutch).
    assert!(env.bot_texts(env.support)[1].contains("privégesprek"), "{:?}", env.bot_texts(env.support));
    assert_eq!(env.tickets().await.len(), 1);
    let dm = dc.dm_channel(alice);
    assert!(
        dc.wait_until(WAIT, || env.bot_texts(dm).iter().any(|t| t.contains("We gaan hier verder met je zaak"))).await,
        "the DM continues the case, in Dutch: {:?}",
        env.bot_texts(dm)
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_outside_support_channels_and_from_bots_are_ignored() {
    let env = Env::start(NewGuild::named("Ziggo")).await;
    let dc = &env.dc;
    let alice = dc.create_user(NewUser::named("alice"));
    let other_bot = dc.create_user(NewUser::bot("statusbot"));
    dc.post_text(alice, env.general, "Is er een storing in Amsterdam? Geen internet");
    dc.post_text(other_bot, env.support, "Is er een storing in Amsterdam? Geen internet");
    // A question that is answered, posted after the others: once its answer is there, the others were seen.
    dc.post_text(alice, env.support, "Storing in Amsterdam? Mijn internet ligt eruit");
    assert!(dc.wait_until(WAIT, || dc.visible_bot_messages(env.support).len() == 1).await);
    let stored = env.stored_messages().await;
    assert_eq!(stored.len(), 1, "only the customer's message in the support channel is stored: {stored:?}");
    assert_eq!(stored[0].text, "Storing in Amsterdam? Mijn internet ligt eruit");
    assert!(dc.visible_bot_messages(env.general).is_empty());
    assert!(env.conversation_of(env.general).await.is_none());
    // The bot's own answer came back over the gateway too, and was not stored either.
    assert_eq!(env.stored_messages().await.len(), 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_billing_question_in_a_dm_opens_a_ticket_and_the_agents_reply_arrives_escaped() {
    let env = Env::start(NewGuild::named("Ziggo")).await;
    let dc = &env.dc;
    let carol = dc.create_user(NewUser::named("carol").display_name("Carol"));
    dc.dm_bot(carol, "Mijn factuur klopt niet, ik betaal dubbel voor mijn abonnement");
    let dm = dc.existing_dm_channel(carol).expect("the DM exists");
    assert!(eventually(|| async { env.tickets().await.len() == 1 }).await, "a ticket opened");
    let ticket = env.tickets().await.remove(0);
    assert_eq!(ticket.category, "billing");
    let conversation = env.store.conversation(ticket.conversation).await.unwrap();
    assert_eq!(
        (conversation.platform_chat_id.as_str(), conversation.kind),
        (dm.to_string().as_str(), ConversationKind::Private)
    );
    let customer = env.store.customer(ticket.customer).await.unwrap();
    assert_eq!((customer.platform_user_id, customer.display_name), (carol.to_string(), "Carol".to_owned()));

    env.agent_reply(&ticket, "agent:1", "Hoi **Carol**, factuur_2024 is gecorrigeerd.\n# Groet").await;
    assert!(dc.wait_until(WAIT, || env.bot_texts(dm).iter().any(|t| t.contains("gecorrigeerd"))).await);
    let reply = dc.visible_bot_messages(dm).into_iter().find(|m| m.content.contains("gecorrigeerd")).unwrap();
    assert_eq!(reply.content, "Hoi \\*\\*Carol\\*\\*, factuur\\_2024 is gecorrigeerd.\n\\# Groet");
    no_mentions_allowed(&reply);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slash_ticket_and_an_agent_reply_with_everyone_ping_nobody() {
    let env = Env::start(NewGuild::named("Ziggo")).await;
    let dc = &env.dc;
    // Dave's Discord app is English: an interaction says so (`locale`), and what answers it is in English alone.
    let dave = dc.create_user(NewUser::named("dave").locale("en-US"));
    let role = dc.create_role(env.guild, "klanten", 0);
    let run = dc.run_command(dave, env.support, SlashCommand::new("ticket").option("subject", "modem kapot"));
    assert!(
        dc.wait_until(WAIT, || dc.interaction(run.interaction_id).and_then(|i| i.response_type()) == Some(4)).await
    );
    let callback = dc.interaction(run.interaction_id).unwrap().callbacks[0].clone();
    assert_eq!(callback["data"]["flags"].as_u64().unwrap_or(0) & message_flags::EPHEMERAL, message_flags::EPHEMERAL);
    assert_eq!(callback["data"]["content"], "Received, the answer follows here.");
    // `/ticket` in a server channel opens a private case: the ticket moves to the customer's DM.
    assert!(dc.wait_until(WAIT, || env.bot_texts(env.support).iter().any(|t| t.contains("private chat"))).await);
    assert!(env.bot_texts(env.support).iter().all(|t| !t.contains("privégesprek")), "{:?}", env.bot_texts(env.support));
    let dm = dc.dm_channel(dave);
    assert!(dc.wait_until(WAIT, || env.bot_texts(dm).iter().any(|t| t.starts_with("We continue your case"))).await);
    let ticket = env.tickets().await.remove(0);
    assert!(ticket.subject.contains("modem kapot"), "{}", ticket.subject);

    let text = format!("Let op @everyone en @here, <@&{role}> en <@{dave}>: de monteur komt morgen.");
    env.agent_reply(&ticket, "agent:everyone", &text).await;
    assert!(dc.wait_until(WAIT, || env.bot_texts(dm).iter().any(|t| t.contains("monteur"))).await);
    let reply = dc.visible_bot_messages(dm).into_iter().find(|m| m.content.contains("monteur")).unwrap();
    no_mentions_allowed(&reply);
    assert!(!reply.content.contains("@everyone") && !reply.content.contains("@here"), "{}", reply.content);
    for m in dc.all_bot_messages() {
        no_mentions_allowed(&m);
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iban_in_a_support_channel_moves_the_ticket_to_a_dm_and_the_public_message_is_deleted() {
    let env = Env::start(NewGuild::named("Ziggo").bot_can_manage_messages()).await;
    let dc = &env.dc;
    let erin = dc.create_user(NewUser::named("erin"));
    let posted = dc.post_text(erin, env.support, &format!("Mijn IBAN is {IBAN}, de incasso van deze maand klopt niet"));
    assert!(
        dc.wait_until(WAIT, || dc.is_deleted(env.support, posted.message_id)).await,
        "the public message is deleted"
    );
    let dm = dc.existing_dm_channel(erin).expect("the bot opened a DM");
    assert!(dc.wait_until(WAIT, || dc.visible_bot_messages(dm).len() == 2).await, "{:?}", env.bot_texts(dm));
    let public = env.bot_texts(env.support);
    assert_eq!(public.len(), 1, "{public:?}");
    for text in public.iter().chain(env.bot_texts(dm).iter()) {
        assert!(!text.contains(IBAN) && !text.contains("0417164300"), "private data repeated: {text}");
    }

    // The ticket now lives in the DM, and the customer's next DM joins it.
    let tickets = env.tickets().await;
    assert_eq!(tickets.len(), 1);
    let dm_conversation = env.conversation_of(dm).await.expect("the DM is a conversation");
    assert_eq!(dm_conversation.kind, ConversationKind::Private);
    assert_eq!(tickets[0].conversation, dm_conversation.id);
    dc.dm_bot(erin, "Het gaat om de incasso van 12 maart");
    let ticket = tickets[0].id;
    assert!(
        eventually(|| async {
            env.store
                .ticket_events(ticket)
                .await
                .unwrap()
                .iter()
                .any(|e| e.kind == TicketEventKind::CustomerMessage && e.body.contains("12 maart"))
        })
        .await
    );
    assert_eq!(env.tickets().await.len(), 1, "the same ticket, not a new one");
    env.agent_reply(&tickets[0], "agent:dm", "We storten het bedrag terug.").await;
    assert!(dc.wait_until(WAIT, || env.bot_texts(dm).iter().any(|t| t.contains("terug"))).await);
    assert!(dc.duplicate_contents().is_empty(), "{:?}", dc.duplicate_contents());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_dms_fall_back_to_a_private_thread_without_a_retry_storm() {
    // No Manage Messages here: the public message stays, and the bot knows that without trying.
    let env = Env::start(NewGuild::named("Ziggo")).await;
    let dc = &env.dc;
    let frank = dc.create_user(NewUser::named("frank").dms_closed());
    let posted = dc.post_text(frank, env.support, &format!("Mijn IBAN is {IBAN}, klopt de incasso wel?"));
    assert!(dc.wait_until(WAIT, || dc.threads_of(env.support).len() == 1).await);
    let thread = dc.threads_of(env.support)[0];
    assert!(dc.wait_until(WAIT, || dc.visible_bot_messages(thread).len() == 2).await, "{:?}", env.bot_texts(thread));
    assert!(dc.thread_members(thread).contains(&frank));
    assert!(!dc.is_deleted(env.support, posted.message_id));
    assert_eq!(dc.stats().requests_to(routes::DELETE_MESSAGE), 0);
    let thread_conversation = env.conversation_of(thread).await.expect("the thread is a conversation");
    assert_eq!(thread_conversation.kind, ConversationKind::Private);
    let ticket = env.tickets().await.remove(0);
    assert_eq!(ticket.conversation, thread_conversation.id);
    assert_eq!(dc.stats().invalid_requests, 1, "one 50007, nothing else refused");

    // The customer answers in the thread: that is a customer message on the same ticket.
    dc.post_text(frank, thread, "Mijn klantnummer staat op de factuur");
    assert!(
        eventually(|| async {
            env.store.ticket_events(ticket.id).await.unwrap().iter().any(|e| e.body.contains("klantnummer"))
        })
        .await
    );
    // A second private case of the same customer goes to a thread at once: no second 50007.
    dc.post_text(frank, env.support, "Mijn telefoonnummer is 0612345678, bel me terug over mijn contract");
    assert!(dc.wait_until(WAIT, || dc.threads_of(env.support).len() == 2).await);
    assert_eq!(dc.stats().invalid_requests, 1);

    // A DM that closes after the ticket opened: one refused send, then the conversation is left alone.
    let grace = dc.create_user(NewUser::named("grace"));
    dc.dm_bot(grace, "Mijn factuur klopt niet, ik betaal dubbel");
    assert!(eventually(|| async { env.tickets().await.len() == 3 }).await);
    let dm = dc.existing_dm_channel(grace).unwrap();
    let grace_conversation = env.conversation_of(dm).await.unwrap();
    let grace_ticket = env.tickets().await.into_iter().find(|t| t.conversation == grace_conversation.id).unwrap();
    dc.set_dms_open(grace, false);
    let first = env.agent_reply(&grace_ticket, "agent:g1", "Eerste antwoord").await;
    let second = env.agent_reply(&grace_ticket, "agent:g2", "Tweede antwoord").await;
    let failed = |id| {
        let store = env.store.clone();
        async move { store.outbox_item(id).await.unwrap().state == OutboxState::Failed }
    };
    assert!(eventually(|| async { failed(first).await && failed(second).await }).await);
    assert_eq!(dc.stats().invalid_requests, 2, "the second reply was not even tried");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_drop_loses_no_message_and_stores_none_twice() {
    let env = Env::start(NewGuild::named("Ziggo")).await;
    let dc = &env.dc;
    let alice = dc.create_user(NewUser::named("alice"));
    let texts =
        ["Mijn factuur klopt niet", "Tijdens de storing: mijn modem knippert rood", "Weer online: graag een monteur"];
    dc.post_text(alice, env.support, texts[0]);
    assert!(eventually(|| async { env.stored_messages().await.len() == 1 }).await);

    // Dropped without a close frame: serenity resumes, and what was posted meanwhile is replayed.
    dc.drop_gateway(None);
    dc.post_text(alice, env.support, texts[1]);
    assert!(dc.wait_until(WAIT, || dc.stats().resumes >= 1).await, "{:?}", dc.stats());
    assert!(eventually(|| async { env.stored_messages().await.len() == 2 }).await);

    // 4009: the session is gone and serenity identifies again (its shard queue waits 5 s between identifies).
    dc.drop_gateway(Some(4009));
    dc.post_text(alice, env.support, texts[2]);
    assert!(dc.wait_until(WAIT * 2, || dc.stats().identifies == 2 && dc.ready_connections() == 1).await);
    dc.post_text(alice, env.support, "Nog een vraag over mijn contract");
    assert!(eventually(|| async { env.stored_messages().await.len() >= 3 }).await);
    let stored = env.stored_messages().await;
    let ids: BTreeSet<&str> = stored.iter().map(|m| m.platform_message_id.as_str()).collect();
    assert_eq!(ids.len(), stored.len(), "no message stored twice");
    for t in &texts[..2] {
        assert_eq!(stored.iter().filter(|m| m.text == *t).count(), 1, "{t} stored once: {stored:?}");
    }
    assert!(stored.iter().any(|m| m.text == "Nog een vraag over mijn contract"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_delays_the_reply_and_does_not_duplicate_it() {
    let env = Env::start(NewGuild::named("Ziggo")).await;
    let dc = &env.dc;
    let henk = dc.create_user(NewUser::named("henk"));
    dc.dm_bot(henk, "Mijn factuur klopt niet, te veel betaald");
    assert!(eventually(|| async { env.tickets().await.len() == 1 }).await);
    let ticket = env.tickets().await.remove(0);
    let dm = dc.existing_dm_channel(henk).unwrap();
    // The new case's acknowledgement goes out first, before the fault is armed.
    assert!(dc.wait_until(WAIT, || env.bot_texts(dm).iter().any(|t| t.contains("zaak van gemaakt"))).await);
    let retry_after = Duration::from_millis(1500);
    dc.inject(routes::CREATE_MESSAGE, 1, Fault::TooManyRequests { retry_after, scope: Scope::User });
    let before = dc.stats().requests_to(routes::CREATE_MESSAGE);
    let started = Instant::now();
    let row = env.agent_reply(&ticket, "agent:429", "Het teveel betaalde bedrag komt terug.").await;
    assert!(dc.wait_until(WAIT, || env.bot_texts(dm).iter().any(|t| t.contains("komt terug"))).await);
    assert!(started.elapsed() >= retry_after, "sent again only after retry_after: {:?}", started.elapsed());
    assert_eq!(env.bot_texts(dm).iter().filter(|t| t.contains("komt terug")).count(), 1);
    assert_eq!(dc.stats().requests_to(routes::CREATE_MESSAGE) - before, 2, "one 429, one success");
    // The row is marked sent just after Discord accepted it.
    assert!(eventually(|| async { env.store.outbox_item(row).await.unwrap().state == OutboxState::Sent }).await);
    // Attempts count claims: the refused one, the one that sent, and at most one given back unsent because it fell
    // inside the chat's spacing after the case's acknowledgement. Discord saw two requests (above).
    let attempts = env.store.outbox_item(row).await.unwrap().attempts;
    assert!((2..=3).contains(&attempts), "{attempts}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletions_reach_the_stored_message() {
    let env = Env::start(NewGuild::named("Ziggo")).await;
    let dc = &env.dc;
    let ivy = dc.create_user(NewUser::named("ivy"));
    let posted = dc.post_text(ivy, env.support, "Mijn factuur klopt niet");
    assert!(eventually(|| async { env.stored_messages().await.len() == 1 }).await);
    dc.edit(ivy, env.support, posted.message_id, "Mijn factuur van maart klopt niet");
    assert!(eventually(|| async { env.stored_messages().await[0].edited_at.is_some() }).await);
    assert_eq!(env.stored_messages().await[0].text, "Mijn factuur van maart klopt niet");
    dc.delete(ivy, env.support, posted.message_id);
    assert!(eventually(|| async { env.stored_messages().await[0].deleted_at.is_some() }).await);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_is_posted_once_per_announcement_channel_and_crossposted_where_it_can_be() {
    let env = Env::start(NewGuild::named("Ziggo")).await;
    let dc = &env.dc;
    let sent = env.sender.announce("**Storing** in Utrecht is _opgelost_").await.expect("posted everywhere");
    assert_eq!(sent.len(), 2);
    for channel in [env.news, env.general] {
        let messages = dc.visible_bot_messages(channel);
        assert_eq!(messages.len(), 1, "once in {channel}");
        assert_eq!(messages[0].content, "\\*\\*Storing\\*\\* in Utrecht is \\_opgelost\\_");
        no_mentions_allowed(&messages[0]);
    }
    assert!(dc.visible_bot_messages(env.news)[0].crossposted);
    assert!(!dc.visible_bot_messages(env.general)[0].crossposted);
    assert_eq!(dc.stats().crossposts, 1);
    assert_eq!(env.sender.bot_user_id(), dc.bot_user_id().0);
    env.stop().await;
}

/// A spike alert reaches the webcare team's channel (`discord.staff_channels`) once, through the outbox, and its
/// customers' words ping nobody; the team's own messages there are not customers' (see
/// `messages_outside_support_channels_and_from_bots_are_ignored`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spike_alert_is_posted_once_in_the_staff_channel_and_pings_nobody() {
    let env = Env::start(NewGuild::named("Ziggo")).await;
    let dc = &env.dc;
    let team = env.team;
    let now = Utc::now();
    let cluster = env
        .store
        .create_cluster(webcare_domain::NewCluster {
            account: String::new(),
            service: Service::Internet,
            region: Some("Utrecht".into()),
            at: now,
        })
        .await
        .unwrap();
    env.store
        .insert_alert(&webcare_domain::SpikeAlert {
            id: webcare_domain::AlertId(0),
            cluster: cluster.id,
            account: String::new(),
            service: Service::Internet,
            region: Some("Utrecht".into()),
            count: 6,
            samples: vec!["@everyone geen internet in Utrecht!".into()],
            draft: BTreeMap::from([("nl".into(), "We onderzoeken een storing in Utrecht.".into())]),
            first_at: now,
            last_at: now,
            created_at: now,
        })
        .await
        .unwrap();
    let staff_alerts =
        webcare_app::alerts::StaffAlerts::new(env.store.clone(), vec![env.team_conversation], env.wake.clone());
    assert_eq!(staff_alerts.step(now).await.unwrap(), 1);
    assert_eq!(staff_alerts.step(now).await.unwrap(), 0, "once");
    assert!(dc.wait_until(WAIT, || dc.visible_bot_messages(team).len() == 1).await, "the team got the alert");
    let posted = &dc.visible_bot_messages(team)[0];
    assert!(
        posted.content.starts_with("Spike alert: 6 customers report internet trouble in Utrecht"),
        "{}",
        posted.content
    );
    assert!(posted.content.contains("We onderzoeken een storing in Utrecht."), "{}", posted.content);
    no_mentions_allowed(posted);
    env.stop().await;
}

/// The team works a case from its Discord channel: a command typed as a message acts as the agent linked to its
/// author, the answer comes back in the channel, and the reply reaches the customer in their DM. Nothing the team
/// writes there is stored as a customer's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_team_claims_and_answers_a_case_from_its_channel() {
    let env = Env::start(NewGuild::named("Ziggo")).await;
    let dc = &env.dc;
    let team = env.team;
    let ann = env.agent("ann").await;
    let code = webcare_app::staff::issue_link_code(env.store.as_ref(), &ann, Utc::now()).await.unwrap();
    let carol = dc.create_user(NewUser::named("carol"));
    dc.dm_bot(carol, "Mijn factuur klopt niet, ik betaal dubbel voor mijn abonnement");
    assert!(eventually(|| async { env.tickets().await.len() == 1 }).await, "a ticket opened");
    let ticket = env.tickets().await.remove(0);
    let dm = dc.existing_dm_channel(carol).expect("the DM exists");
    assert!(dc.wait_until(WAIT, || env.bot_texts(dm).len() == 1).await, "the case is acknowledged");

    let member = dc.create_user(NewUser::named("ann_at_ziggo"));
    let answers = |n: usize| dc.wait_until(WAIT, move || dc.visible_bot_messages(team).len() >= n);
    dc.post_text(member, team, "/queue");
    assert!(answers(1).await);
    assert!(env.bot_texts(team)[0].starts_with("I do not know you yet"), "{:?}", env.bot_texts(team));
    dc.post_text(member, team, &format!("/link {}", code.to_lowercase()));
    assert!(answers(2).await);
    assert!(env.bot_texts(team)[1].starts_with("Linked: your commands here act as ann"), "{:?}", env.bot_texts(team));
    dc.post_text(member, team, "anyone for lunch?");
    dc.post_text(member, team, "!queue");
    assert!(answers(3).await);
    let queue = &env.bot_texts(team)[2];
    assert!(queue.contains(&format!("#{} new · billing · discord", ticket.id)), "{queue}");
    dc.post_text(member, team, &format!("/claim {}", ticket.id));
    assert!(answers(4).await);
    assert_eq!(
        env.bot_texts(team)[3],
        format!("Ticket #{} (billing) is yours, ann. Language: Dutch (their messages).", ticket.id)
    );
    dc.post_text(
        member,
        team,
        &format!("/reply {} Dat zoeken we uit, @everyone! Je hoort vandaag van ons.", ticket.id),
    );
    assert!(dc.wait_until(WAIT, || env.bot_texts(dm).len() == 2).await, "the customer got the reply");
    let reply = dc.visible_bot_messages(dm).remove(1);
    assert!(reply.content.contains("Dat zoeken we uit"), "{}", reply.content);
    no_mentions_allowed(&reply);
    assert!(answers(5).await);
    assert!(env.bot_texts(team)[4].starts_with(&format!("Reply to ticket #{} queued", ticket.id)));
    let claimed = env.store.ticket(ticket.id).await.unwrap();
    assert_eq!(claimed.claimed_by, Some(ann.id));

    // The desk's commands are slash commands in the team's server too, shown by default only to members who may
    // manage messages; what follows the name is one text option.
    let registered = dc.commands(Some(env.guild));
    let claim = registered.iter().find(|c| c["name"] == "claim").expect("the desk's commands are registered");
    assert_eq!(claim["default_member_permissions"], "8192", "Manage Messages: {claim}");
    assert_eq!(
        (claim["options"][0]["name"].as_str(), claim["options"][0]["description"].as_str()),
        (Some("args"), Some("N"))
    );
    assert!(
        registered.iter().any(
            |c| c["name"] == "queue" && c.get("options").is_none_or(|o| o.as_array().is_some_and(|o| o.is_empty()))
        )
    );
    assert_eq!(registered.len(), env.desk_commands, "every desk command");
    let note = format!("{} belt morgen terug", ticket.id);
    let run = dc.run_command(member, team, SlashCommand::new("note").option("args", &note));
    assert!(
        dc.wait_until(WAIT, || dc.interaction(run.interaction_id).and_then(|i| i.response_type()) == Some(4)).await
    );
    let callback = dc.interaction(run.interaction_id).unwrap().callbacks[0].clone();
    assert_eq!(callback["data"]["flags"].as_u64().unwrap_or(0) & message_flags::EPHEMERAL, message_flags::EPHEMERAL);
    assert!(answers(6).await);
    assert_eq!(env.bot_texts(team)[5], format!("Note added to ticket #{}.", ticket.id));
    let events = env.store.ticket_events(ticket.id).await.unwrap();
    assert!(events.iter().any(|e| e.kind == TicketEventKind::Note && e.body == "belt morgen terug"), "{events:?}");
    // Elsewhere in the server a desk command does nothing but say where it works.
    let run = dc.run_command(carol, env.support, SlashCommand::new("queue"));
    assert!(
        dc.wait_until(WAIT, || dc.interaction(run.interaction_id).and_then(|i| i.response_type()) == Some(4)).await
    );
    let refused = dc.interaction(run.interaction_id).unwrap().callbacks[0].clone();
    assert!(refused["data"]["content"].as_str().unwrap().contains("team's channel only"), "{refused}");
    let events = env.store.ticket_events(ticket.id).await.unwrap();
    assert!(events.iter().any(|e| e.kind == TicketEventKind::Reply && e.actor == Some(ann.id)), "{events:?}");

    // A colleague links in a DM with the bot instead, so the code is not shown in the team's channel.
    let bo = env.agent("bo").await;
    let code = webcare_app::staff::issue_link_code(env.store.as_ref(), &bo, Utc::now()).await.unwrap();
    let colleague = dc.create_user(NewUser::named("bo_at_ziggo"));
    dc.dm_bot(colleague, &format!("!link {code}"));
    let bo_dm = dc.existing_dm_channel(colleague).expect("the DM exists");
    assert!(dc.wait_until(WAIT, || env.bot_texts(bo_dm).len() == 1).await, "the DM got an answer");
    assert!(env.bot_texts(bo_dm)[0].starts_with("Linked: your commands here act as bo"), "{:?}", env.bot_texts(bo_dm));

    // The chatter got no answer, and nothing from the team's channel or the link is a customer's message.
    assert_eq!(dc.visible_bot_messages(team).len(), 6, "{:?}", env.bot_texts(team));
    let stored = env.stored_messages().await;
    assert_eq!(stored.len(), 1, "only carol's message is stored: {stored:?}");
    env.stop().await;
}

/// An intake that notes which messages reached it, in front of the real one: which instance got what.
struct Noting {
    inner: Arc<dyn Intake>,
    seen: std::sync::Mutex<Vec<String>>,
}

#[serenity::async_trait]
impl Intake for Noting {
    async fn receive(
        &self,
        event: webcare_domain::InboundEvent,
    ) -> Result<webcare_domain::IntakeOutcome, webcare_domain::IntakeError> {
        self.seen.lock().unwrap().push(event.text.clone());
        self.inner.receive(event).await
    }
}

/// Two instances split the bot's servers by gateway shard (`discord.shards = 2`, `discord.shard_ids` = [0] and
/// [1]): each server's messages reach the instance that runs its shard and no other, DMs come on shard 0, and
/// every message is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_split_the_servers_by_shard() {
    let dc = FakeDiscord::start_with(Config { shards: 2, ..Config::default() }).await;
    // Discord routes a server to shard (id >> 22) % 2, and ids follow the clock: make servers until both shards
    // have one.
    let mut support: [Option<ChannelId>; 2] = [None, None];
    for i in 0..200 {
        if support.iter().all(Option::is_some) {
            break;
        }
        let guild = dc.create_guild(NewGuild::named(&format!("Server {i}")));
        let shard = ((guild.0 >> 22) % 2) as usize;
        if support[shard].is_none() {
            support[shard] = Some(dc.create_text_channel(guild, "support"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let [Some(on_0), Some(on_1)] = support else { panic!("no server on each shard") };

    let db = TestDb::sqlite().await;
    let app = webcare_tests::app(db.db()).await;
    let shutdown = CancellationToken::new();
    let mut instances = Vec::new();
    let mut gateways = Vec::new();
    for shard in 0..2 {
        let noting = Arc::new(Noting { inner: app.pipeline.clone(), seen: Default::default() });
        let settings = DiscordSettings {
            token: dc.token(),
            api_url: Some(dc.api_url()),
            support_channels: vec![on_0.0, on_1.0],
            announcement_channels: vec![],
            delete_private_data: true,
            staff_channels: vec![],
            staff_desk: None,
            shards: 2,
            shard_span: (shard, shard),
        };
        let (_, gateway) =
            webcare_discord::start(settings, noting.clone(), shutdown.clone()).await.expect("the adapter starts");
        instances.push(noting);
        gateways.push(gateway);
    }
    assert!(dc.wait_until(WAIT, || dc.ready_connections() == 2).await, "both instances connected");
    let mut shards: Vec<_> = dc.identifies().iter().map(|i| i.shard).collect();
    shards.sort();
    assert_eq!(shards, vec![Some((0, 2)), Some((1, 2))]);

    let alice = dc.create_user(NewUser::named("alice"));
    dc.post_text(alice, on_0, "Storing in Utrecht? Geen internet (shard 0)");
    dc.post_text(alice, on_1, "Storing in Gent? Geen internet (shard 1)");
    dc.dm_bot(alice, "Mijn factuur klopt niet (DM)");
    let stored = || async { app.store.inbound_after(InboundId(0), 100).await.unwrap().len() == 3 };
    assert!(eventually(stored).await, "the three messages are stored");
    let seen = |i: usize| instances[i].seen.lock().unwrap().clone();
    assert_eq!(seen(0).len(), 2, "{:?}", seen(0));
    assert!(seen(0).iter().any(|t| t.ends_with("(shard 0)")) && seen(0).iter().any(|t| t.ends_with("(DM)")));
    assert_eq!(seen(1), vec!["Storing in Gent? Geen internet (shard 1)".to_owned()]);
    shutdown.cancel();
    for g in gateways {
        let _ = tokio::time::timeout(WAIT, g).await;
    }
    dc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_a_clear_error_that_does_not_print_it() {
    let dc = FakeDiscord::start().await;
    let db = TestDb::sqlite().await;
    let store: Arc<dyn Store> = Arc::new(db.db().clone());
    let pipeline = Pipeline::start(
        store.clone(),
        webcare_ticketing::Ticketing::new(store, Default::default()),
        Arc::new(webcare_bridge::Classifier::default()),
        IntakeConfig::default(),
        Arc::new(Notify::new()),
    )
    .await
    .unwrap();
    let token = "MTE5MDAwMDAwMDAwMDAwMDAwMQ.GfAkEd.NotTheRightTokenAtAll";
    let settings = DiscordSettings {
        token: token.into(),
        api_url: Some(dc.api_url()),
        support_channels: vec![],
        announcement_channels: vec![],
        delete_private_data: true,
        staff_channels: vec![],
        staff_desk: None,
        shards: 1,
        shard_span: (0, 0),
    };
    assert!(!format!("{settings:?}").contains(token));
    let err = match webcare_discord::start(settings, Arc::new(pipeline), CancellationToken::new()).await {
        Ok(_) => panic!("a bad token must not start the bot"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("discord.token") && !err.contains(token), "{err}");
    assert_eq!(dc.stats().identifies, 0);
}
