//! End to end: the real adapter talks HTTP to the fake Bot API server, with the real intake pipeline and delivery
//! engine over a fresh SQLite database. Each test plays a customer in the fake and reads back what the bot did.
//!
//! Synchronisation is on the fake's state (`wait_until`), never on sleeps. "The update is stored" is read as "the
//! fake has no pending update": Telegram (and the fake) drops an update only when the next `getUpdates` carries an
//! offset past it, and the adapter moves its offset only after the intake stored the update. Everything here needs
//! only the fake and SQLite, so it runs everywhere, CI included.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::Utc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use webcare_app::delivery::{Delivery, DeliveryConfig};
use webcare_app::intake::{IntakeConfig, Pipeline};
use webcare_app::notices::Notices;
use webcare_domain::{
    Agent, ConversationKind, InboundEvent, InboundId, Intake, IntakeError, IntakeOutcome, NewAgent, NewNotice,
    NewOutbox, NoticeChange, NoticeState, OutboxState, Platform, Priority, Role, Service, Store,
};
use webcare_fake_telegram::{
    BotMembership, BotMessage, ChatId, Config, FakeTelegram, Fault, NewUser, RateLimits, UserId, UserMessage,
};
use webcare_telegram::{StartError, Telegram, TelegramSettings};
use webcare_tests::TestDb;

const WAIT: Duration = Duration::from_secs(20);

struct Harness {
    tg: FakeTelegram,
    _db: TestDb,
    store: Arc<dyn Store>,
    ticketing: webcare_ticketing::Ticketing,
    pipeline: Arc<Pipeline>,
    notices: Notices,
    /// Stops delivery and every adapter.
    shutdown: CancellationToken,
    /// Stops the current adapter only.
    adapter_stop: CancellationToken,
    adapter: Option<JoinHandle<()>>,
}

fn settings(tg: &FakeTelegram) -> TelegramSettings {
    TelegramSettings::new(tg.token(), tg.url())
}

impl Harness {
    async fn start() -> Harness {
        Self::start_with(Config::default(), settings).await
    }

    async fn start_with(config: Config, settings: impl Fn(&FakeTelegram) -> TelegramSettings) -> Harness {
        let tg = FakeTelegram::start_with(config).await;
        let db = TestDb::sqlite().await;
        let store: Arc<dyn Store> = Arc::new(db.db().clone());
        let telegram = Telegram::connect(settings(&tg)).await.expect("connect to the fake");
        // Wired as `serve` wires them: the delivery engine with the Telegram sender, woken by the pipeline.
        let config = DeliveryConfig { poll_interval: Duration::from_millis(50), ..DeliveryConfig::default() };
        let delivery = Arc::new(Delivery::new(store.clone(), vec![Arc::new(telegram.sender())], config));
        let ticketing = webcare_ticketing::Ticketing::new(store.clone(), Default::default());
        let pipeline = Arc::new(
            Pipeline::start(
                store.clone(),
                ticketing.clone(),
                Arc::new(webcare_bridge::Classifier::default()),
                IntakeConfig::default(),
                delivery.waker(),
            )
            .await
            .expect("start the pipeline"),
        );
        let notices = Notices::new(store.clone(), pipeline.clone(), delivery.waker(), false);
        let shutdown = CancellationToken::new();
        {
            let (delivery, shutdown) = (delivery.clone(), shutdown.clone());
            tokio::spawn(async move { delivery.run(shutdown).await });
        }
        let adapter_stop = shutdown.child_token();
        let running = telegram.start(pipeline.clone(), adapter_stop.clone()).await.expect("start polling");
        assert!(running.webhook.is_none(), "polling has no webhook router");
        let h = Harness {
            tg,
            _db: db,
            store,
            ticketing,
            pipeline,
            notices,
            shutdown,
            adapter_stop,
            adapter: Some(running.task),
        };
        assert!(h.tg.wait_until(WAIT, || h.tg.polls_in_progress() > 0).await, "the adapter polls");
        h
    }

    /// Starts another adapter (after the previous one stopped) over the same pipeline, as a restart would.
    async fn restart_adapter(&mut self, intake: Arc<dyn Intake>) {
        let telegram = Telegram::connect(settings(&self.tg)).await.expect("connect again");
        self.adapter_stop = self.shutdown.child_token();
        let running = telegram.start(intake, self.adapter_stop.clone()).await.expect("start polling again");
        self.adapter = Some(running.task);
    }

    fn user(&self, name: &str) -> (UserId, ChatId) {
        let user = self.tg.create_user(NewUser::named(name).language("nl"));
        (user, self.tg.private_chat(user))
    }

    /// Waits until every update the fake holds was confirmed, i.e. stored by the intake.
    async fn stored(&self) {
        assert!(
            self.tg.wait_until(WAIT, || self.tg.pending_updates() == 0).await,
            "the adapter did not take the pending updates"
        );
    }

    /// Waits until the chat shows at least `n` bot messages and returns them.
    async fn bot_messages(&self, chat: ChatId, n: usize) -> Vec<BotMessage> {
        let arrived = self.tg.wait_until(WAIT, || self.tg.visible_bot_messages(chat).len() >= n).await;
        let messages = self.tg.visible_bot_messages(chat);
        assert!(arrived, "expected {n} bot messages in chat {}, got {messages:#?}", chat.0);
        messages
    }

    /// Waits until no outbox row is waiting or being sent.
    async fn outbox_settled(&self) {
        let deadline = Instant::now() + WAIT;
        loop {
            let counts = self.store.outbox_counts().await.unwrap();
            let busy: i64 = counts
                .iter()
                .filter(|(s, _)| matches!(s, OutboxState::Pending | OutboxState::Sending))
                .map(|(_, n)| n)
                .sum();
            if busy == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "the outbox did not settle: {counts:?}");
            // The outbox lives in the database, which has no change feed to wait on; a short poll it is.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn agent(&self) -> Agent {
        if let Some(sam) = self.store.agent_by_name("sam").await.unwrap() {
            return sam;
        }
        self.store
            .create_agent(NewAgent { name: "sam".into(), role: Role::Agent, password_hash: None, at: Utc::now() })
            .await
            .unwrap()
    }

    async fn conversation(&self, chat: ChatId) -> webcare_domain::Conversation {
        self.store
            .conversation_by_chat(Platform::Telegram, &chat.0.to_string())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no conversation for chat {}", chat.0))
    }

    /// An agent's reply to a ticket, queued as the API queues it.
    async fn agent_reply(&self, ticket: webcare_domain::TicketId, text: &str) {
        let agent = self.agent().await;
        let now = Utc::now();
        let reply = self.ticketing.record_reply(ticket, &agent, text, now).await.unwrap();
        self.store.enqueue(reply.outbox, now).await.unwrap();
        self.notices.wake();
    }

    /// A message to a conversation as an agent reply, bypassing the ticket (for texts longer than a reply may be).
    async fn enqueue(&self, chat: ChatId, key: &str, text: &str) {
        let conv = self.conversation(chat).await;
        let now = Utc::now();
        self.store.enqueue(NewOutbox::message(conv.id, text, key, Priority::AGENT_REPLY, now), now).await.unwrap();
        self.notices.wake();
    }

    async fn notice(&self) -> webcare_domain::Notice {
        self.store
            .create_notice(NewNotice {
                title: "Storing Utrecht".into(),
                text: "We are fixing an internet outage in Utrecht.".into(),
                texts: [("nl".to_owned(), "We verhelpen een internetstoring in Utrecht.".to_owned())].into(),
                services: vec![Service::Internet],
                regions: vec!["Utrecht".into()],
                state: NoticeState::Identified,
                draft: false,
                paid_broadcast: false,
                cluster: None,
                author: None,
                approved_by: None,
                at: Utc::now(),
            })
            .await
            .unwrap()
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.adapter.take() {
            task.await.unwrap();
        }
    }
}

const OUTAGE_QUESTION: &str = "Is er een storing in Utrecht? Geen internet sinds 10 uur";
const BILLING_QUESTION: &str = "Mijn factuur klopt niet, ik betaal dubbel voor mijn abonnement";
const IBAN_MESSAGE: &str = "Er is te veel afgeschreven van NL91ABNA0417164300, kunnen jullie dat terugboeken?";

#[tokio::test]
async fn a_dutch_outage_question_gets_the_active_notice_and_a_button_to_a_person() {
    let h = Harness::start().await;
    h.notice().await;
    let (anna, chat) = h.user("Anna");
    h.tg.send_text(anna, chat, OUTAGE_QUESTION);
    let answer = h.bot_messages(chat, 1).await.remove(0);
    assert_eq!(answer.text, "We verhelpen een internetstoring in Utrecht.");
    assert_eq!(answer.parse_mode.as_deref(), Some("HTML"));
    assert_eq!(answer.callback_data(), vec!["talk_to_person:nl"]);

    // The button opens a ticket, and the press is answered so the client stops waiting; in Dutch, as it was offered.
    let query = h.tg.press_button(anna, chat, answer.message_id, "talk_to_person:nl");
    let reply = h.bot_messages(chat, 2).await.remove(1);
    assert!(reply.text.contains("zaak") && !reply.text.contains("case"), "{}", reply.text);
    assert!(h.tg.callback_answer(&query).is_some(), "the callback query is answered");
    let tickets = h.store.tickets(&[]).await.unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].conversation, h.conversation(chat).await.id);
    h.stop().await;
}

#[tokio::test]
async fn a_billing_question_opens_a_ticket_and_the_agent_reply_arrives_in_the_same_chat() {
    let h = Harness::start().await;
    let (bert, chat) = h.user("Bert");
    h.tg.send_text(bert, chat, BILLING_QUESTION);
    h.stored().await;
    let tickets = h.store.tickets(&[]).await.unwrap();
    assert_eq!(tickets.len(), 1, "one ticket");
    assert_eq!(tickets[0].category, "billing");
    assert_eq!(tickets[0].conversation, h.conversation(chat).await.id);

    // A document in the same chat is stored described, for the ticket and the agent.
    let doc = h.tg.send(bert, chat, UserMessage::document("invoice.pdf", "application/pdf", b"%PDF-1.4"));
    h.stored().await;
    let stored = h.store.inbound_after(InboundId(0), 10).await.unwrap();
    let doc = stored.iter().find(|m| m.platform_message_id == format!("{}/{}", chat.0, doc.message_id));
    assert_eq!(doc.map(|m| m.attachments.clone()), Some(vec!["document: invoice.pdf".to_owned()]));

    // The document joins the customer's open ticket, referenced for the agent; it needs no answer of its own.
    let events = h.store.ticket_events(tickets[0].id).await.unwrap();
    assert!(events.iter().any(|e| e.body.contains("document: invoice.pdf")), "{events:#?}");

    // Whatever the bridge answered to the document has gone out before the agent writes.
    h.outbox_settled().await;
    let before = h.tg.visible_bot_messages(chat).len();
    h.agent_reply(tickets[0].id, "We zoeken het uit en komen morgen bij je terug.").await;
    let reply = h.bot_messages(chat, before + 1).await.remove(before);
    assert_eq!(reply.text, "We zoeken het uit en komen morgen bij je terug.");
    h.stop().await;
}

#[tokio::test]
async fn an_iban_in_a_group_is_answered_without_it_deleted_and_continued_in_private() {
    let h = Harness::start().await;
    let group = h.tg.create_supergroup("Klanten", BotMembership::Administrator { can_delete_messages: true });
    let (carla, private) = h.user("Carla");
    let posted = h.tg.send_text(carla, group, &format!("@{} {IBAN_MESSAGE}", h.tg.bot_username()));
    assert!(posted.update_id.is_some(), "a mention reaches the bot in privacy mode");

    let answer = h.bot_messages(group, 1).await.remove(0);
    assert!(!answer.text.contains("NL91") && !answer.text.contains("0417164300"), "{}", answer.text);
    let markup = answer.reply_markup.clone().expect("a button with the deep link");
    let url = markup["inline_keyboard"][0][0]["url"].as_str().expect("a URL button").to_owned();
    let prefix = format!("https://t.me/{}?start=", h.tg.bot_username());
    let link = url.strip_prefix(&prefix).unwrap_or_else(|| panic!("a deep link, got {url}")).to_owned();
    assert!(h.tg.wait_until(WAIT, || h.tg.is_deleted(group, posted.message_id)).await, "the public message is deleted");

    let tickets = h.store.tickets(&[]).await.unwrap();
    assert_eq!(tickets.len(), 1);
    let ticket = tickets[0].id;

    // The deep link opens the private chat with `/start <link>`: the same ticket continues there.
    h.tg.send_text(carla, private, &format!("/start {link}"));
    let welcome = h.bot_messages(private, 1).await.remove(0);
    assert!(welcome.text.contains(&ticket.to_string()), "{}", welcome.text);
    assert_eq!(h.store.tickets(&[]).await.unwrap().len(), 1, "no second ticket");
    assert_eq!(h.store.ticket(ticket).await.unwrap().conversation, h.conversation(private).await.id);

    h.agent_reply(ticket, "Ik zie de dubbele afschrijving, we boeken het terug.").await;
    let reply = h.bot_messages(private, 2).await.remove(1);
    assert_eq!(reply.text, "Ik zie de dubbele afschrijving, we boeken het terug.");
    assert_eq!(h.tg.visible_bot_messages(group).len(), 1, "nothing more in public");
    h.stop().await;
}

#[tokio::test]
async fn without_the_right_to_delete_the_public_message_stays_and_the_answer_still_comes() {
    let h = Harness::start().await;
    let group = h.tg.create_group("Buurt", BotMembership::Member);
    let (dirk, _) = h.user("Dirk");
    let posted = h.tg.send_text(dirk, group, &format!("@{} {IBAN_MESSAGE}", h.tg.bot_username()));
    let answer = h.bot_messages(group, 1).await.remove(0);
    assert!(!answer.text.contains("NL91"), "{}", answer.text);
    assert!(!h.tg.is_deleted(group, posted.message_id));

    // In privacy mode a group message that does not address the bot never reaches it; one that does but holds
    // nothing for webcare is stored and decided, not answered.
    let unseen = h.tg.send_text(dirk, group, "Iemand zin in koffie?");
    assert_eq!(unseen.update_id, None);
    assert_eq!(h.store.inbound_after(InboundId(0), 100).await.unwrap().len(), 1);
    h.stop().await;
}

#[tokio::test]
async fn stop_ends_notice_updates() {
    let h = Harness::start().await;
    let notice = h.notice().await;
    let (eva, eva_chat) = h.user("Eva");
    let (frank, frank_chat) = h.user("Frank");
    h.tg.send_text(eva, eva_chat, OUTAGE_QUESTION);
    h.tg.send_text(frank, frank_chat, OUTAGE_QUESTION);
    h.bot_messages(eva_chat, 1).await;
    h.bot_messages(frank_chat, 1).await;

    h.tg.send_text(eva, eva_chat, "/stop");
    let stopped = h.bot_messages(eva_chat, 2).await.remove(1);
    assert!(stopped.text.contains("geen updates meer"), "{}", stopped.text);

    let updated = h
        .store
        .update_notice(
            notice.id,
            NoticeChange { text: Some("The outage in Utrecht is fixed.".into()), ..NoticeChange::default() },
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(h.notices.broadcast(&updated, Utc::now()).await.unwrap(), 1, "only Frank still follows");
    h.bot_messages(frank_chat, 2).await;
    h.outbox_settled().await;
    assert_eq!(h.tg.bot_messages(eva_chat).len(), 2, "Eva got no update after /stop");
    h.stop().await;
}

#[tokio::test]
async fn commands_edits_and_unknown_commands() {
    let h = Harness::start().await;
    // The menu Telegram shows on `/`: the customers' commands, in Dutch for Dutch users.
    let names = |menu: Vec<(String, String)>| menu.into_iter().map(|(c, _)| c).collect::<Vec<_>>();
    assert_eq!(names(h.tg.commands("default", "")), ["status", "stop", "ticket"]);
    let dutch = h.tg.commands("default", "nl");
    assert_eq!(dutch[2], ("ticket".to_owned(), "Een medewerker spreken".to_owned()));
    let (gert, chat) = h.user("Gert");
    h.tg.send_text(gert, chat, "/help");
    let help = h.bot_messages(chat, 1).await.remove(0);
    assert!(help.text.contains("/status") && help.text.contains("/stop"), "{}", help.text);
    // Gert's Telegram app is Dutch (its `language_code`), so the help is Dutch alone.
    assert!(help.text.starts_with("Stel je vraag gewoon in een bericht.\n"), "{}", help.text);
    assert!(!help.text.contains("Just ask"), "{}", help.text);
    let emma = h.tg.create_user(NewUser::named("Emma").language("en-GB"));
    let emma_chat = h.tg.private_chat(emma);
    h.tg.send_text(emma, emma_chat, "/status");
    assert_eq!(h.bot_messages(emma_chat, 1).await.remove(0).text, "No open case.", "her app is English");

    h.tg.send_text(gert, chat, "/frobnicate");
    let unknown = h.bot_messages(chat, 2).await.remove(1);
    assert!(unknown.text.contains("/frobnicate"), "{}", unknown.text);

    let posted = h.tg.send_text(gert, chat, BILLING_QUESTION);
    h.stored().await;
    h.tg.edit_text(gert, chat, posted.message_id, "Mijn factuur klopt niet, ik betaal drie keer");
    h.stored().await;
    let stored = h.store.inbound_after(InboundId(0), 100).await.unwrap();
    let edited = stored.iter().find(|m| m.platform_message_id == format!("{}/{}", chat.0, posted.message_id));
    assert_eq!(edited.map(|m| m.text.as_str()), Some("Mijn factuur klopt niet, ik betaal drie keer"));

    h.tg.send_text(gert, chat, "/status");
    let status = h.bot_messages(chat, 3).await.remove(2);
    assert!(status.text.contains("zaak") || status.text.contains("case"), "{}", status.text);
    h.stop().await;
}

#[tokio::test]
async fn a_429_delays_the_message_by_retry_after_and_it_arrives_once() {
    let h = Harness::start().await;
    let (hans, chat) = h.user("Hans");
    h.tg.inject("sendMessage", 1, Fault::TooManyRequests { retry_after: 2 });
    let asked = Instant::now();
    h.tg.send_text(hans, chat, "/help");
    let messages = h.bot_messages(chat, 1).await;
    assert!(asked.elapsed() >= Duration::from_secs(2), "sent after {:?}, before retry_after", asked.elapsed());
    h.outbox_settled().await;
    assert_eq!(h.tg.bot_messages(chat).len(), 1, "{messages:#?}");
    assert_eq!(h.tg.stats().faults, 1);
    assert_eq!(h.tg.stats().calls["sendMessage"], 2, "one refused, one accepted");
    assert!(h.tg.duplicate_texts().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn a_blocked_bot_causes_no_retry_storm() {
    let h = Harness::start().await;
    let (ida, chat) = h.user("Ida");
    h.tg.send_text(ida, chat, BILLING_QUESTION);
    h.stored().await;
    let ticket = h.store.tickets(&[]).await.unwrap()[0].id;
    // The new case's acknowledgement reaches Ida; then she blocks the bot.
    assert!(h.bot_messages(chat, 1).await[0].text.contains("zaak van gemaakt"));
    h.tg.block_bot(ida);
    let before = h.tg.stats().calls.get("sendMessage").copied().unwrap_or(0);
    for text in ["Eerste antwoord", "Tweede antwoord", "Derde antwoord"] {
        h.agent_reply(ticket, text).await;
    }
    h.outbox_settled().await;
    let after = h.tg.stats().calls.get("sendMessage").copied().unwrap_or(0);
    assert_eq!(after - before, 1, "one refused send; the conversation is then known to be unreachable");
    assert!(h.conversation(chat).await.unreachable);
    let counts = h.store.outbox_counts().await.unwrap();
    assert!(counts.contains(&(OutboxState::Failed, 3)), "{counts:?}");
    assert_eq!(h.store.ticket(ticket).await.unwrap().id, ticket, "the ticket stays");
    h.stop().await;
}

/// An intake that stores and decides like the real one, then hangs on one message: a process that dies after
/// storing an update and before confirming it to Telegram.
struct DiesAfterStoring {
    inner: Arc<Pipeline>,
    marker: &'static str,
}

#[async_trait]
impl Intake for DiesAfterStoring {
    async fn receive(&self, event: InboundEvent) -> Result<IntakeOutcome, IntakeError> {
        let dies = event.text.contains(self.marker);
        let outcome = self.inner.receive(event).await?;
        if dies {
            std::future::pending::<()>().await;
        }
        Ok(outcome)
    }
}

#[tokio::test]
async fn a_restart_during_polling_loses_no_update_and_stores_none_twice() {
    let mut h = Harness::start().await;
    // Replace the adapter by one whose intake dies after storing the marked message.
    h.adapter_stop.cancel();
    h.adapter.take().unwrap().await.unwrap();
    h.restart_adapter(Arc::new(DiesAfterStoring { inner: h.pipeline.clone(), marker: "DIE" })).await;

    let (jan, jan_chat) = h.user("Jan");
    let (kees, kees_chat) = h.user("Kees");
    let (lies, lies_chat) = h.user("Lies");
    h.tg.send_text(jan, jan_chat, "/help");
    h.bot_messages(jan_chat, 1).await;
    h.tg.send_text(kees, kees_chat, "/help DIE");
    // Stored and answered, but never confirmed: the adapter hangs inside the intake.
    h.bot_messages(kees_chat, 1).await;
    assert_eq!(h.tg.pending_updates(), 1);
    let crashed = h.adapter.take().unwrap();
    crashed.abort();
    assert!(crashed.await.unwrap_err().is_cancelled());

    // While webcare is down a customer writes.
    h.tg.send_text(lies, lies_chat, "/help");
    assert_eq!(h.tg.pending_updates(), 2);

    h.restart_adapter(h.pipeline.clone()).await;
    h.bot_messages(lies_chat, 1).await;
    h.stored().await;
    h.outbox_settled().await;
    assert_eq!(h.tg.bot_messages(kees_chat).len(), 1, "the redelivered update is not answered twice");
    let stored = h.store.inbound_after(InboundId(0), 100).await.unwrap();
    assert_eq!(stored.len(), 3, "each update stored once: {stored:#?}");

    // A graceful stop confirms what was handled: nothing comes again after the next start.
    h.adapter_stop.cancel();
    h.adapter.take().unwrap().await.unwrap();
    assert_eq!(h.tg.pending_updates(), 0);
    h.tg.send_text(jan, jan_chat, "/status");
    h.restart_adapter(h.pipeline.clone()).await;
    h.bot_messages(jan_chat, 2).await;
    h.stored().await;
    assert_eq!(h.store.inbound_after(InboundId(0), 100).await.unwrap().len(), 4);
    h.stop().await;
}

#[tokio::test]
async fn a_group_that_became_a_supergroup_is_followed() {
    let h = Harness::start().await;
    let group = h.tg.create_group("Straat", BotMembership::Member);
    let (mark, _) = h.user("Mark");
    h.tg.send_text(mark, group, &format!("@{} {BILLING_QUESTION}", h.tg.bot_username()));
    h.stored().await;
    let ticket = h.store.tickets(&[]).await.unwrap()[0].id;
    let conversation = h.conversation(group).await.id;

    let supergroup = h.tg.migrate_to_supergroup(group, mark);
    h.agent_reply(ticket, "We kijken ernaar.").await;
    let reply = h.bot_messages(supergroup, 1).await.remove(0);
    assert_eq!(reply.text, "We kijken ernaar.");
    let moved = h.store.conversation(conversation).await.unwrap();
    assert_eq!(moved.platform_chat_id, supergroup.0.to_string());
    assert_eq!(moved.kind, ConversationKind::Public);
    h.stop().await;
}

#[tokio::test]
async fn markup_in_a_message_arrives_escaped() {
    let h = Harness::start().await;
    let (nina, chat) = h.user("Nina");
    h.tg.send_text(nina, chat, BILLING_QUESTION);
    h.stored().await;
    let ticket = h.store.tickets(&[]).await.unwrap()[0].id;
    let text = "Zie <b>dit</b> & <script>alert(1)</script> <a href=\"x\">link</a>";
    h.agent_reply(ticket, text).await;
    // After the new case's acknowledgement, the agent's reply.
    let reply = h.bot_messages(chat, 2).await.remove(1);
    assert_eq!(reply.text, text, "shown exactly as typed");
    assert!(reply.entities.is_empty(), "no formatting: {:?}", reply.entities);
    h.stop().await;
}

#[tokio::test]
async fn a_5000_character_answer_arrives_split_and_once() {
    let h = Harness::start().await;
    let (olaf, chat) = h.user("Olaf");
    h.tg.send_text(olaf, chat, "/help");
    h.bot_messages(chat, 1).await;
    let paragraph = "Dit is een lange uitleg over je aansluiting. ".repeat(25);
    let paragraphs: Vec<String> = (0..5).map(|i| format!("{i}. {}", paragraph.trim())).collect();
    let text = paragraphs.join("\n\n");
    assert!(text.chars().count() > 5000);
    h.enqueue(chat, "long", &text).await;
    h.bot_messages(chat, 3).await;
    h.outbox_settled().await;
    let all = h.tg.bot_messages(chat);
    assert_eq!(all.len(), 3, "the help text and two parts: {all:#?}");
    let parts = &all[1..];
    assert!(parts.iter().all(|p| p.text.chars().count() <= 4096));
    assert_eq!(parts[0].text, paragraphs[..3].join("\n\n"), "cut at a paragraph boundary");
    assert_eq!(parts[1].text, paragraphs[3..].join("\n\n"));
    assert!(h.tg.duplicate_texts().is_empty());
    h.stop().await;
}

#[tokio::test]
async fn webhook_mode_checks_the_secret_and_takes_updates() {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let url = format!("http://{}/telegram/webhook", listener.local_addr().unwrap());
    let tg = FakeTelegram::start_with(Config { rate_limits: RateLimits::off(), ..Config::default() }).await;
    let db = TestDb::sqlite().await;
    let app = webcare_tests::app(db.db()).await;
    let mut s = settings(&tg);
    s.webhook_url = Some(url.clone());
    let telegram = Telegram::connect(s).await.unwrap();
    let shutdown = CancellationToken::new();
    let running = telegram.start(app.pipeline.clone(), shutdown.clone()).await.unwrap();
    let router = running.webhook.expect("a webhook router");
    let server = tokio::spawn(async move { axum::serve(listener, router).await });

    // Someone who is not Telegram: no secret header, no entry.
    let client = reqwest::Client::new();
    let forged = client.post(&url).json(&serde_json::json!({"update_id": 1})).send().await.unwrap();
    assert_eq!(forged.status(), reqwest::StatusCode::UNAUTHORIZED);
    let wrong = client
        .post(&url)
        .header(webcare_telegram::SECRET_HEADER, "guess")
        .json(&serde_json::json!({"update_id": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), reqwest::StatusCode::UNAUTHORIZED);

    let user = tg.create_user(NewUser::named("Pim"));
    let chat = tg.private_chat(user);
    tg.send_text(user, chat, BILLING_QUESTION);
    assert!(tg.wait_until(WAIT, || tg.stats().webhook_deliveries == 1).await, "the fake delivered the update");
    assert_eq!(tg.stats().webhook_failures, 0);
    let stored = app.store.inbound_after(InboundId(0), 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].platform_message_id, format!("{}/1", chat.0));
    assert_eq!(app.store.tickets(&[]).await.unwrap().len(), 1);
    shutdown.cancel();
    running.task.await.unwrap();
    server.abort();
}

#[tokio::test]
async fn a_wrong_or_revoked_token_fails_start_naming_the_key_not_the_token() {
    let tg = FakeTelegram::start().await;
    let token = "7000000001:AAWrongTokenThatMustNotBePrinted";
    let error = Telegram::connect(TelegramSettings::new(token, tg.url())).await.unwrap_err();
    assert!(matches!(error, StartError::Unauthorized { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("telegram.token"), "{message}");
    assert!(!message.contains("AAWrongToken"), "{message}");
    assert!(!format!("{error:?}").contains("AAWrongToken"));
}

#[tokio::test]
async fn network_failures_are_retried_and_nothing_arrives_twice() {
    let h = Harness::start().await;
    let (quinn, chat) = h.user("Quinn");
    // The next poll and the next send lose their connection.
    h.tg.inject("getUpdates", 1, Fault::DropConnection);
    h.tg.inject("sendMessage", 1, Fault::DropConnection);
    h.tg.send_text(quinn, chat, "/help");
    h.bot_messages(chat, 1).await;
    h.tg.send_text(quinn, chat, "/status");
    h.bot_messages(chat, 2).await;
    h.stored().await;
    h.outbox_settled().await;
    assert_eq!(h.tg.stats().faults, 2, "both faults were met");
    assert_eq!(h.tg.bot_messages(chat).len(), 2);
    assert!(h.tg.duplicate_texts().is_empty());
    assert_eq!(h.store.inbound_after(InboundId(0), 10).await.unwrap().len(), 2);
    h.stop().await;
}

/// `count` customers in private chats, subscribed to a new notice (paid or not) whose version is then broadcast.
/// Returns how long the broadcast took to reach all of them.
async fn broadcast_to(h: &Harness, count: usize, paid: bool) -> Duration {
    let chats: Vec<ChatId> = (0..count).map(|i| h.user(&format!("abonnee {i}")).1).collect();
    let mut notice = h.notice().await;
    if paid {
        let change = webcare_domain::NoticeChange { paid_broadcast: Some(true), ..Default::default() };
        notice = h.store.update_notice(notice.id, change, Utc::now()).await.unwrap();
    }
    let ids: Vec<String> = chats.iter().map(|c| c.0.to_string()).collect();
    h._db.db().seed_subscribers(notice.id, webcare_domain::Platform::Telegram, &ids, Utc::now()).await.unwrap();
    let progress = h.notices.progress(notice.id).await.unwrap();
    assert_eq!((progress.telegram_subscribers, progress.paid_broadcast), (count as i64, paid));
    assert!((progress.paid_cost_stars - count as f64 * 0.1).abs() < 1e-9, "the estimate before sending");
    let started = std::time::Instant::now();
    h.notices.broadcast(&notice, Utc::now()).await.unwrap();
    let everyone = || chats.iter().all(|c| h.tg.stats().deliveries_per_chat.contains_key(&c.0));
    assert!(h.tg.wait_until(Duration::from_secs(20), everyone).await, "every subscriber got the notice");
    started.elapsed()
}

#[tokio::test]
async fn a_paid_broadcast_goes_out_above_the_free_limit_and_a_free_one_does_not() {
    // Telegram's real limits: 30 messages/s for free, 1,000/s for a paid broadcast.
    let h = Harness::start().await;
    let paid = broadcast_to(&h, 90, true).await;
    let stats = h.tg.stats();
    assert_eq!((stats.paid_sends, stats.rate_limited), (90, 0), "every message paid for, none refused");
    assert!(paid < Duration::from_millis(1500), "90 paid messages took {paid:?}; 30/s would take 3 s");
    h.stop().await;

    let h = Harness::start().await;
    let free = broadcast_to(&h, 90, false).await;
    let stats = h.tg.stats();
    assert_eq!((stats.paid_sends, stats.rate_limited), (0, 0));
    assert!(free >= Duration::from_millis(2800), "90 free messages took {free:?}: faster than 30/s");
    h.stop().await;
}
