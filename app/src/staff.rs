//! The webcare team's own chats (a Telegram staff group, a Discord staff channel) as a place to work: agents see the
//! queue and claim, answer, note, set pending, solve, release and transfer tickets there, admins publish a notice
//! from a spike alert or write one (`/notice SCOPE: TEXT`), change its scope, move it through its states, approve a
//! colleague's draft and resolve it, as they would in the console.
//!
//! A command acts as the agent whose chat account wrote it. An agent links an account once: the console (or
//! `POST /api/v1/me/chat-link`) gives a code valid for [`LINK_VALID`], and `/link CODE` in a private chat with the
//! bot, or in a staff chat, redeems it.
//! Only the code's SHA-256 is stored, and a code links one account once. Anyone else's command gets an answer that
//! says how to link, and does nothing.
//!
//! Every answer goes into the outbox under the key `staff:<platform>:<message id>`, so it is sent at the platforms'
//! limits like everything else; the key also makes a redelivered command (Telegram after a restart, a Discord
//! gateway replay) a no-op. Answers name tickets by number, category and state only: a ticket's text may hold a
//! customer's private data, and a staff chat lives on a third party's servers.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{TimeDelta, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use webcare_domain::{
    Agent, AlertId, ConversationId, ConversationKind, InboundEvent, InboundKind, IntakeError, NewConversation,
    NewOutbox, Notice, NoticeChange, NoticeId, NoticeState, Platform, Priority, Store, StoreError, TermEdit, Ticket,
    TicketFilter, TicketId, TicketState, Timestamp,
};
use webcare_ticketing::{TicketError, Ticketing};

use crate::alerts::AlertOutcome;
use crate::notices::{NoticeError, Notices};

/// How long a link code may be redeemed.
pub const LINK_VALID: TimeDelta = TimeDelta::minutes(10);
/// Letters and digits that cannot be mistaken for one another (no 0/O, 1/I/L).
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const CODE_LEN: usize = 10;
/// Tickets `/queue` lists.
const QUEUE_LINES: u32 = 10;
/// How far back `/alerts` looks.
const RECENT_ALERTS: TimeDelta = TimeDelta::hours(24);

/// A new link code: 10 characters from a 31-letter alphabet (about 50 bits), to be shown once.
pub fn new_link_code() -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..CODE_LEN).map(|_| CODE_ALPHABET[rng.random_range(0..CODE_ALPHABET.len())] as char).collect()
}

/// What is stored of a link code: the SHA-256 of its letters, uppercased, without spaces or dashes, so that a code
/// typed as `abcd-efgh 23` still matches.
pub fn link_code_hash(code: &str) -> String {
    let plain: String = code.chars().filter(|c| !c.is_whitespace() && *c != '-').flat_map(char::to_uppercase).collect();
    hex::encode(Sha256::digest(plain.as_bytes()))
}

/// Creates a link code for `agent` and returns it; the store keeps only its hash.
pub async fn issue_link_code(store: &dyn Store, agent: &Agent, now: Timestamp) -> Result<String, StoreError> {
    let code = new_link_code();
    store.add_chat_link_code(agent.id, &link_code_hash(&code), now + LINK_VALID, now).await?;
    Ok(code)
}

/// Carries out staff commands; see the module documentation.
pub struct Desk {
    store: Arc<dyn Store>,
    ticketing: Ticketing,
    notices: Arc<Notices>,
    wake: Arc<Notify>,
    /// The staff chats, by platform and the platform's chat id, with their conversations.
    chats: HashMap<(Platform, String), ConversationId>,
    /// The bridge's lexicons as loaded now, which `/lexicon` checks a change against; none where unset.
    intake: Option<Arc<dyn webcare_domain::Intake>>,
}

/// The commands: name, arguments, and what it does, for `/help` and the platforms' command menus.
const COMMANDS: &[(&str, &str, &str)] = &[
    ("link", "CODE", "link your account (get the code in the console, under Account)"),
    ("queue", "", "the open tickets, by due time"),
    ("find", "TEXT", "tickets in any state whose customer wrote or is named TEXT, or ticket number TEXT"),
    ("claim", "N", "take ticket N"),
    ("reply", "N TEXT", "answer the customer of ticket N"),
    ("canned", "[N REPLY]", "the approved replies, or send one to the customer of ticket N"),
    ("note", "N TEXT", "an internal note on ticket N"),
    ("pending", "N", "ticket N waits for the customer"),
    ("solve", "N", "mark ticket N solved"),
    ("release", "N", "give ticket N back to the queue"),
    ("transfer", "N NAME", "hand ticket N to another agent"),
    ("alerts", "", "spike alerts of the last 24 hours"),
    (
        "publish",
        "ALERT [TEXT]",
        "publish a notice from a spike alert (admins), with the draft text unless you give one",
    ),
    ("notices", "", "the notices that are not resolved"),
    (
        "notice",
        "SCOPE: TEXT",
        "write a notice (admins): /notice internet,tv in Utrecht, Zeist: We werken aan een storing. (no \"in\" for \
         nationwide, \"all\" for every service)",
    ),
    ("scope", "NOTICE SCOPE", "what a notice covers from now on (admins), as in /scope 3 internet in Utrecht"),
    (
        "update",
        "NOTICE STATE [TEXT]",
        "investigating, identified, monitoring or resolved, with a new text if given (admins)",
    ),
    ("resolve", "NOTICE [TEXT]", "mark a notice resolved (admins); its subscribers get the final message"),
    ("approve", "NOTICE", "publish a notice that awaits a second admin's approval (admins)"),
    (
        "report",
        "[DAYS]",
        "messages per category and place, spikes, tickets and response times of the last days (admins)",
    ),
    (
        "lexicon",
        "add|remove LANGUAGE GROUP: TERM, or undo ID",
        "change a lexicon or a place's other names (admins): /lexicon add regions Utrecht: Rijnsweerd",
    ),
    ("help", "", "this list"),
];

/// `/help`: every command with its arguments.
fn help() -> String {
    let mut text = String::from("webcare commands in this chat:");
    for (name, args, what) in COMMANDS.iter().filter(|(name, _, _)| *name != "help") {
        let args = if args.is_empty() { String::new() } else { format!(" {args}") };
        let _ = write!(text, "\n/{name}{args}: {what}");
    }
    text
}

impl Desk {
    /// `chats` are the staff chats as (platform, the platform's chat id, conversation).
    pub fn new(
        store: Arc<dyn Store>,
        ticketing: Ticketing,
        notices: Arc<Notices>,
        wake: Arc<Notify>,
        chats: impl IntoIterator<Item = (Platform, String, ConversationId)>,
    ) -> Self {
        let chats = chats.into_iter().map(|(p, chat, c)| ((p, chat), c)).collect();
        Desk { store, ticketing, notices, wake, chats, intake: None }
    }

    /// `/lexicon` checks changes against the lexicons `intake` has loaded (the deciding pipeline's).
    pub fn with_lexicon(mut self, intake: Arc<dyn webcare_domain::Intake>) -> Self {
        self.intake = Some(intake);
        self
    }

    /// Carries out one command at `now` and returns the answer for the chat; `None` for what is no command.
    pub async fn answer(&self, event: &InboundEvent, now: Timestamp) -> Result<Option<String>, IntakeError> {
        let Some((name, args)) = command_of(event) else { return Ok(None) };
        match self.run(event, &name, args.trim(), now).await {
            Ok(a) => Ok(Some(a)),
            // The adapter does not acknowledge the event, so the platform delivers it again.
            Err(Failure::Store(e)) if e.is_transient() => Err(IntakeError::Unavailable(e.to_string())),
            Err(Failure::Store(e)) => {
                tracing::error!(error = %e, command = %name, "a staff command failed");
                Ok(Some(format!("/{name} failed: the database refused it. Try again or use the console.")))
            }
            Err(Failure::Said(text)) => Ok(Some(text)),
        }
    }

    async fn run(&self, event: &InboundEvent, name: &str, args: &str, now: Timestamp) -> Result<String, Failure> {
        if name == "help" || name == "start" {
            return Ok(help());
        }
        if event.user_id == event.chat_id && event.chat_kind != ConversationKind::Private {
            // Telegram's anonymous group admins write as the group itself: one link would act for all of them.
            return Ok("You write anonymously, as the group; commands need to know who you are. Turn off \
                       \"Remain anonymous\" in your admin rights for this group and try again."
                .to_owned());
        }
        if name == "link" {
            return self.link(event, args, now).await;
        }
        if event.chat_kind == ConversationKind::Private {
            return Ok("Here I only link accounts; send the other commands in the staff chat.".to_owned());
        }
        let Some(agent) = self.store.agent_by_chat_account(event.platform, &event.user_id).await? else {
            return Ok("I do not know you yet. In the webcare console, open Account, get a link code and send /link \
                       CODE here."
                .to_owned());
        };
        match name {
            "queue" => self.queue(now).await,
            "find" => self.find(args, now).await,
            "canned" if args.is_empty() => self.canned_list().await,
            "claim" | "reply" | "canned" | "note" | "pending" | "solve" | "release" | "transfer" => {
                self.ticket_command(event, name, args, &agent, now).await
            }
            "alerts" => self.alerts(now).await,
            "publish" => self.publish(args, &agent, now).await,
            "notices" => self.notices().await,
            "notice" => self.create_notice(args, &agent, now).await,
            "scope" => self.scope(args, &agent, now).await,
            "update" | "resolve" => self.update(name, args, &agent, now).await,
            "approve" => self.approve(args, &agent, now).await,
            "report" => self.report(args, &agent, now).await,
            "lexicon" => self.lexicon(args, &agent, now).await,
            _ => Ok(format!("Unknown command /{name}. Send /help for the list.")),
        }
    }

    async fn link(&self, event: &InboundEvent, code: &str, now: Timestamp) -> Result<String, Failure> {
        if code.is_empty() {
            return Ok("Send /link CODE with the code the console shows under Account.".to_owned());
        }
        let hash = link_code_hash(code);
        match self.store.redeem_chat_link_code(&hash, event.platform, &event.user_id, now).await? {
            None => {
                Ok("That code is unknown, used or expired. Get a new one in the console, under Account.".to_owned())
            }
            Some(id) => {
                let agent = self.store.agent(id).await?;
                tracing::info!(agent = %agent.name, platform = %event.platform, "a chat account was linked");
                Ok(format!(
                    "Linked: your commands here act as {} ({}). Send /help for the list.",
                    agent.name, agent.role
                ))
            }
        }
    }

    async fn queue(&self, now: Timestamp) -> Result<String, Failure> {
        let filter = TicketFilter {
            states: vec![TicketState::New, TicketState::Open],
            limit: Some(QUEUE_LINES),
            ..Default::default()
        };
        let tickets = self.ticketing.queue(&filter).await?;
        if tickets.is_empty() {
            return Ok("The queue is empty.".to_owned());
        }
        let mut text = String::from("Open tickets, first due first:");
        self.ticket_lines(&mut text, &tickets, now).await?;
        text.push_str("\nClaim one with /claim N.");
        Ok(text)
    }

    /// `/find TEXT`: tickets in any state that the console's search finds, named as the queue names them (number,
    /// state, category, platform), never with the customer's words.
    async fn find(&self, args: &str, now: Timestamp) -> Result<String, Failure> {
        let text = args.trim();
        if text.is_empty() || text.chars().count() > 200 {
            return Ok("Send /find TEXT: words the customer wrote, their name, or a ticket number.".to_owned());
        }
        let filter = TicketFilter { text: Some(text.to_owned()), limit: Some(QUEUE_LINES), ..Default::default() };
        let tickets = self.ticketing.queue(&filter).await?;
        if tickets.is_empty() {
            return Ok("No ticket matches.".to_owned());
        }
        let mut answer = String::from("Tickets that match, first due first:");
        self.ticket_lines(&mut answer, &tickets, now).await?;
        Ok(answer)
    }

    /// One line per ticket: number, state, category, platform, due time and holder.
    async fn ticket_lines(&self, text: &mut String, tickets: &[Ticket], now: Timestamp) -> Result<(), Failure> {
        let names: BTreeMap<_, _> = self.store.agents().await?.into_iter().map(|a| (a.id, a.name)).collect();
        for t in tickets {
            let due = match t.due_at {
                Some(d) if d < now => format!("overdue since {}", self.local(d)),
                Some(d) => format!("due {}", self.local(d)),
                None => "no due time".to_owned(),
            };
            let holder = match self.ticketing.policy().live_holder(t, now) {
                Some(id) => format!(", claimed by {}", names.get(&id).map_or("someone", String::as_str)),
                None => String::new(),
            };
            let _ = write!(text, "\n#{} {} · {} · {} · {due}{holder}", t.id, t.state, t.category, t.platform);
        }
        Ok(())
    }

    async fn ticket_command(
        &self,
        event: &InboundEvent,
        name: &str,
        args: &str,
        agent: &Agent,
        now: Timestamp,
    ) -> Result<String, Failure> {
        let (number, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
        let rest = rest.trim();
        let Some(id) = number.trim_start_matches('#').parse().ok().map(TicketId) else {
            let usage = match name {
                "reply" | "note" => " TEXT",
                "transfer" => " NAME",
                "canned" => " REPLY (/canned lists them)",
                _ => "",
            };
            return Err(Failure::Said(format!("Usage: /{name} N{usage}, N being the ticket's number.")));
        };
        match name {
            "claim" => {
                let t = self.ticketing.claim(id, agent, now).await?;
                let mut text = format!("Ticket #{} ({}) is yours, {}.", t.id, t.category, agent.name);
                if let Some(language) =
                    crate::messages::language_of(self.store.as_ref(), t.conversation, t.customer).await?
                {
                    let _ = write!(text, " Language: {}.", language.describe());
                }
                // As in the console: a case an active notice covers is answered with the notice's words.
                for n in crate::notices::covering(self.store.as_ref(), &t).await? {
                    let _ = write!(
                        text,
                        "\nNotice {} ({}) covers this case; answer with its text so public answers stay consistent: {}",
                        n.id, n.state, n.text
                    );
                }
                Ok(text)
            }
            "reply" | "note" if rest.is_empty() => Err(Failure::Said(format!("Usage: /{name} {id} TEXT"))),
            "transfer" if rest.is_empty() => Err(Failure::Said(format!("Usage: /transfer {id} NAME"))),
            "canned" if rest.is_empty() => {
                Err(Failure::Said(format!("Usage: /canned {id} REPLY (/canned lists them)")))
            }
            "reply" => self.reply(event, id, agent, rest, now).await,
            "canned" => {
                let canned = self.canned(rest).await?;
                let ticket = self.ticketing.ticket(id).await?;
                let customer = self.store.customer(ticket.customer).await?;
                let text = canned.fill(&customer.display_name, &agent.name, id);
                self.reply(event, id, agent, &text, now).await
            }
            "note" => {
                self.ticketing.note(id, agent, rest, now).await?;
                Ok(format!("Note added to ticket #{id}."))
            }
            "pending" => {
                self.ticketing.set_state(id, agent, TicketState::Pending, now).await?;
                Ok(format!("Ticket #{id} waits for the customer; their reply opens it again."))
            }
            "solve" => {
                self.ticketing.set_state(id, agent, TicketState::Solved, now).await?;
                Ok(format!("Ticket #{id} is solved; a reply from the customer opens it again."))
            }
            "release" => {
                self.ticketing.release(id, agent, now).await?;
                Ok(format!("Ticket #{id} is back in the queue for anyone to claim."))
            }
            _ => {
                let Some(to) = self.store.agent_by_name(rest).await?.filter(|a| a.active) else {
                    return Err(Failure::Said(format!(
                        "No active agent is named {rest:?}. Usage: /transfer {id} NAME"
                    )));
                };
                self.ticketing.assign(id, agent, Some(to.id), now).await?;
                Ok(format!("Ticket #{id} is {}'s now.", to.name))
            }
        }
    }

    /// Records an agent's reply, queues it for the customer and queues the answer here, in one unit of work: a
    /// command that is delivered again after a failure finds its answer and stops, so the customer is answered once.
    async fn reply(
        &self,
        event: &InboundEvent,
        id: TicketId,
        agent: &Agent,
        text: &str,
        now: Timestamp,
    ) -> Result<String, Failure> {
        let unit = self.store.begin().await?;
        let done = async {
            let reply = self.ticketing.on(unit.clone()).record_reply(id, agent, text, now).await?;
            unit.enqueue(reply.outbox, now).await?;
            let answer = format!("Reply to ticket #{id} queued for the customer on {}.", reply.ticket.platform);
            if let Some((chat, key)) = self.answer_key(event) {
                unit.enqueue(NewOutbox::message(chat, answer.clone(), key, Priority::AUTOMATIC, now), now).await?;
            }
            Ok::<_, Failure>(answer)
        }
        .await;
        match done {
            Ok(answer) => {
                unit.commit().await?;
                self.wake.notify_one();
                Ok(answer)
            }
            Err(e) => {
                let _ = unit.rollback().await;
                Err(e)
            }
        }
    }

    /// The approved replies, by number and title.
    async fn canned_list(&self) -> Result<String, Failure> {
        let replies = self.store.canned_replies().await?;
        if replies.is_empty() {
            return Ok("No canned replies yet; admins write them in the console.".to_owned());
        }
        let mut text = String::from("Canned replies (send one with /canned TICKET REPLY):");
        for r in &replies {
            let _ = write!(text, "\n{}: {}", r.id, r.title);
        }
        Ok(text)
    }

    /// A canned reply by its number or its title.
    async fn canned(&self, which: &str) -> Result<webcare_domain::CannedReply, Failure> {
        let replies = self.store.canned_replies().await?;
        replies
            .into_iter()
            .find(|r| r.id.to_string() == which || r.title.eq_ignore_ascii_case(which))
            .ok_or_else(|| Failure::Said(format!("No canned reply is {which:?}; /canned lists them.")))
    }

    async fn alerts(&self, now: Timestamp) -> Result<String, Failure> {
        // Newest first.
        let recent = self.store.alerts_since(now - RECENT_ALERTS).await?;
        if recent.is_empty() {
            return Ok("No spike alerts in the last 24 hours.".to_owned());
        }
        let clusters = crate::alerts::alert_clusters(self.store.as_ref(), &recent).await?;
        let mut text = String::from("Spike alerts of the last 24 hours:");
        for a in &recent {
            let outcome = match crate::alerts::outcome(&clusters, a) {
                AlertOutcome::Answered(n) => format!("answered by notice {n}"),
                AlertOutcome::Expired => "expired into tickets".to_owned(),
                AlertOutcome::Waiting => format!("waiting: /publish {}", a.id),
                AlertOutcome::Gone => "its cluster is gone".to_owned(),
            };
            let _ = write!(
                text,
                "\nAlert {}: {} in {}, {} customers, raised {}; {outcome}",
                a.id,
                a.service,
                a.region.as_deref().unwrap_or("an unknown region"),
                a.count,
                self.local(a.created_at),
            );
        }
        Ok(text)
    }

    async fn publish(&self, args: &str, agent: &Agent, now: Timestamp) -> Result<String, Failure> {
        let (number, text) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
        let Some(id) = number.parse().ok().map(AlertId) else {
            return Err(Failure::Said("Usage: /publish ALERT [TEXT]; /alerts lists them.".to_owned()));
        };
        let alert = match self.store.alert(id).await {
            Ok(a) => a,
            Err(StoreError::NotFound { .. }) => return Err(NoticeError::AlertNotFound(id).into()),
            Err(e) => return Err(e.into()),
        };
        let title = alert.notice_title();
        let text = text.trim();
        let (text, texts) = if text.is_empty() { alert.draft_texts() } else { (text.to_owned(), BTreeMap::new()) };
        let notice =
            self.notices.publish_from_alert(id, title, text, texts, NoticeState::Investigating, agent, now).await?;
        if notice.draft {
            return Ok(format!(
                "Notice {} saved from alert {id}; under four-eyes approval another admin publishes it: /approve {}.",
                notice.id, notice.id
            ));
        }
        let customers = self.notices.progress(notice.id).await?.subscribers;
        Ok(format!("Notice {} published from alert {id}: {customers} customers get it.", notice.id))
    }

    async fn notices(&self) -> Result<String, Failure> {
        let open: Vec<Notice> =
            self.store.notices(false).await?.into_iter().filter(|n| n.state != NoticeState::Resolved).collect();
        if open.is_empty() {
            return Ok("No open notices.".to_owned());
        }
        let mut text = String::from("Open notices:");
        for n in &open {
            let scope = |v: Vec<String>| if v.is_empty() { "everywhere".to_owned() } else { v.join(", ") };
            let services = scope(n.services.iter().map(|s| s.to_string()).collect());
            let waiting = if n.draft {
                " · awaiting approval: /approve"
            } else if self.store.notice_proposal(n.id).await?.is_some() {
                " · a new text awaits approval: /approve"
            } else {
                ""
            };
            let _ = write!(
                text,
                "\nNotice {}: {} · {} · {services} · {} · version {}{waiting}",
                n.id,
                n.title,
                n.state,
                scope(n.regions.clone()),
                n.version
            );
        }
        Ok(text)
    }

    /// `/update NOTICE STATE [TEXT]`, and `/resolve NOTICE [TEXT]` for the last state.
    async fn update(&self, name: &str, args: &str, agent: &Agent, now: Timestamp) -> Result<String, Failure> {
        let usage = || {
            let states = NoticeState::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("|");
            Failure::Said(match name {
                "resolve" => "Usage: /resolve NOTICE [TEXT]".to_owned(),
                _ => format!("Usage: /update NOTICE {states} [TEXT]"),
            })
        };
        let (number, rest) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
        let id = number.parse().ok().map(NoticeId).ok_or_else(usage)?;
        let (state, text) = if name == "resolve" {
            (NoticeState::Resolved, rest.trim())
        } else {
            let (word, text) = rest.trim().split_once(char::is_whitespace).unwrap_or((rest.trim(), ""));
            (word.to_lowercase().parse().map_err(|_| usage())?, text.trim())
        };
        let change = NoticeChange {
            state: Some(state),
            text: (!text.is_empty()).then(|| text.to_owned()),
            ..Default::default()
        };
        let updated = self.notices.update(id, change, agent, now).await?;
        let notice = updated.notice;
        Ok(if updated.proposed {
            format!(
                "Notice {}'s new text awaits another admin's approval: /approve {}. Customers keep the approved \
                 words (version {}) until then.",
                notice.id, notice.id, notice.version
            )
        } else if notice.draft {
            format!(
                "Notice {} is {} (version {}), awaiting approval: /approve {}.",
                notice.id, notice.state, notice.version, notice.id
            )
        } else if state == NoticeState::Resolved {
            format!(
                "Notice {} is resolved (version {}); its subscribers get the final message.",
                notice.id, notice.version
            )
        } else {
            format!(
                "Notice {} is {} (version {}); its subscribers get the update.",
                notice.id, notice.state, notice.version
            )
        })
    }

    /// `/notice SCOPE: TEXT`: a notice written in the chat, for an outage no spike alert shows (a few customers, or
    /// what the network team reports), in the main language; the console adds other languages.
    async fn create_notice(&self, args: &str, agent: &Agent, now: Timestamp) -> Result<String, Failure> {
        let usage = |why: &str| {
            Failure::Said(format!(
                "{why}Usage: /notice SCOPE: TEXT, as in /notice internet in Utrecht: We werken aan een storing. \
                 SCOPE is services (internet, tv, mobile, landline, or all) and, after \"in\", places; without \
                 \"in\" the notice is nationwide."
            ))
        };
        let Some((scope, text)) = args.split_once(':') else { return Err(usage("")) };
        let (services, regions) = parse_scope(scope).map_err(|why| usage(&format!("{why} ")))?;
        let input = crate::notices::NoticeInput {
            title: webcare_domain::notice_title(&services, &regions),
            text: text.trim().to_owned(),
            texts: BTreeMap::new(),
            services,
            regions,
            state: NoticeState::Investigating,
            draft: false,
            paid_broadcast: false,
        };
        let notice = self.notices.create(input, agent, now).await?;
        if notice.draft {
            return Ok(format!(
                "Notice {} ({}) is saved; under four-eyes approval another admin publishes it: /approve {}.",
                notice.id, notice.title, notice.id
            ));
        }
        Ok(format!(
            "Notice {} ({}) is published: it answers every matching question from now on, and the customers waiting \
             in the outage clusters it covers get it.",
            notice.id, notice.title
        ))
    }

    /// `/scope NOTICE SCOPE`: a new version that covers other services or places.
    async fn scope(&self, args: &str, agent: &Agent, now: Timestamp) -> Result<String, Failure> {
        let usage = |why: &str| {
            Failure::Said(format!(
                "{why}Usage: /scope NOTICE SCOPE, as in /scope 3 internet,tv in Utrecht, Zeist (without \"in\": \
                 nationwide)."
            ))
        };
        let (number, scope) = args.split_once(char::is_whitespace).unwrap_or((args, ""));
        let Some(id) = number.trim_start_matches('#').parse().ok().map(NoticeId) else { return Err(usage("")) };
        if scope.trim().is_empty() {
            return Err(usage(""));
        }
        let (services, regions) = parse_scope(scope).map_err(|why| usage(&format!("{why} ")))?;
        let change = NoticeChange { services: Some(services), regions: Some(regions), ..Default::default() };
        let notice = self.notices.update(id, change, agent, now).await?.notice;
        let covers = |v: Vec<String>, all: &str| if v.is_empty() { all.to_owned() } else { v.join(", ") };
        Ok(format!(
            "Notice {} now covers {} in {} (version {}{}).",
            notice.id,
            covers(notice.services.iter().map(|s| s.to_string()).collect(), "every service"),
            covers(notice.regions.clone(), "the whole country"),
            notice.version,
            if notice.draft { ", awaiting approval" } else { "" }
        ))
    }

    /// `/report [DAYS]`: the reports' figures in a few lines (admins, as in the console); counts and place names
    /// only, no customer's words.
    async fn report(&self, args: &str, agent: &Agent, now: Timestamp) -> Result<String, Failure> {
        if agent.role != webcare_domain::Role::Admin {
            return Err(Failure::Said("Only admins see the reports.".to_owned()));
        }
        let max = crate::reports::MAX_DAYS;
        let days = match args.trim() {
            "" => 1,
            raw => crate::reports::days(raw)
                .ok_or_else(|| Failure::Said(format!("Usage: /report [DAYS], DAYS from 1 to {max}.")))?,
        };
        let r = crate::reports::report(self.store.as_ref(), now, days, self.ticketing.policy().sla.timezone).await?;
        let list = |items: &mut dyn Iterator<Item = (&str, u64)>| {
            let parts: Vec<String> = items.filter(|(_, n)| *n > 0).map(|(name, n)| format!("{name} {n}")).collect();
            if parts.is_empty() { "none".to_owned() } else { parts.join(", ") }
        };
        let mut categories: BTreeMap<&str, u64> = BTreeMap::new();
        for day in &r.days {
            for (c, n) in &day.categories {
                *categories.entry(c.as_str()).or_default() += n;
            }
        }
        let period = if days == 1 {
            format!("Today ({})", r.timezone)
        } else {
            format!("The last {days} days ({})", r.timezone)
        };
        let mut text = format!(
            "{period}: {} messages ({}).\nMost named places: {}.\nSpike alerts: {}.\nTickets opened, by state now: {}.",
            r.messages,
            list(&mut categories.iter().map(|(c, n)| (*c, *n))),
            list(&mut r.regions.iter().filter(|p| p.name != "unknown").take(5).map(|p| (p.name.as_str(), p.messages))),
            r.spikes.len(),
            list(&mut r.tickets.iter().map(|(s, n)| (s.as_str(), *n))),
        );
        let f = &r.first_response;
        let _ = match (f.median_minutes, f.p90_minutes) {
            (Some(m), Some(p90)) => {
                write!(text, "\nFirst response: {} answered, median {m} min, 90% within {p90} min.", f.answered)
            }
            _ => write!(text, "\nFirst response: none answered yet."),
        };
        Ok(text)
    }

    async fn approve(&self, args: &str, agent: &Agent, now: Timestamp) -> Result<String, Failure> {
        let Some(id) = args.parse().ok().map(NoticeId) else {
            return Err(Failure::Said("Usage: /approve NOTICE".to_owned()));
        };
        let notice = self.notices.approve(id, agent, now).await?;
        let customers = self.notices.progress(notice.id).await?.subscribers;
        Ok(format!("Notice {} (version {}) is published: {customers} customers get it.", notice.id, notice.version))
    }

    /// `/lexicon add|remove LANGUAGE GROUP: TERM` or `/lexicon undo ID`: an admin's change to a lexicon (or to a
    /// place's other names, the `regions` lexicon), as from the console: checked, kept, applied by every instance.
    async fn lexicon(&self, args: &str, agent: &Agent, now: Timestamp) -> Result<String, Failure> {
        use crate::lexicon::{Edit, LexiconError, change, undo};
        let usage = || {
            Failure::Said(format!("Usage: /lexicon {}", COMMANDS.iter().find(|c| c.0 == "lexicon").map_or("", |c| c.1)))
        };
        let said = |e: LexiconError| match e {
            LexiconError::Store(e) => Failure::from(e),
            e => {
                let e = e.to_string();
                let mut chars = e.chars();
                let first = chars.next().map(|c| c.to_uppercase().collect::<String>()).unwrap_or_default();
                Failure::Said(format!("{first}{}.", chars.as_str()))
            }
        };
        let (verb, rest) = args.trim().split_once(char::is_whitespace).unwrap_or((args.trim(), ""));
        let edit = match verb {
            "undo" => {
                let id = rest.trim().parse().map(webcare_domain::LexiconChangeId).map_err(|_| usage())?;
                undo(self.store.as_ref(), id, agent, now).await.map_err(said)?;
                return Ok(format!("Lexicon change {id} taken back; every instance applies it within a few seconds."));
            }
            "add" => TermEdit::Add,
            "remove" => TermEdit::Remove,
            _ => return Err(usage()),
        };
        let Some((where_, term)) = rest.split_once(':') else { return Err(usage()) };
        let (language, group) = where_.trim().split_once(char::is_whitespace).ok_or_else(usage)?;
        let Some(intake) = &self.intake else {
            return Ok("This instance runs no bridge; change the lexicons in the console.".to_owned());
        };
        let edit = Edit { language, group: group.trim(), term: term.trim(), edit };
        let kept = change(self.store.as_ref(), &intake.lexicon(), edit, agent, now).await.map_err(said)?;
        Ok(format!(
            "Lexicon change {id}: {what}; every instance applies it within a few seconds (/lexicon undo {id} takes it back).",
            id = kept.id,
            what = kept.describe()
        ))
    }

    /// Where the answer to a command goes, and the outbox key that keeps it to one answer per command; `None` outside
    /// the staff chats.
    fn answer_key(&self, event: &InboundEvent) -> Option<(ConversationId, String)> {
        let chat = *self.chats.get(&(event.platform, event.chat_id.clone()))?;
        Some((chat, answer_key(event)))
    }

    /// A time as the team reads it: in the SLA's time zone.
    fn local(&self, t: Timestamp) -> String {
        t.with_timezone(&self.ticketing.policy().sla.timezone).format("%d-%m %H:%M").to_string()
    }
}

#[async_trait]
impl webcare_domain::StaffDesk for Desk {
    async fn command(&self, event: InboundEvent) -> Result<(), IntakeError> {
        if event.from_bot || command_of(&event).is_none() {
            return Ok(());
        }
        let unavailable = |e: StoreError| IntakeError::Unavailable(e.to_string());
        let (chat, key) = match self.answer_key(&event) {
            Some(to) => to,
            // A team member links their account in a private chat with the bot, so the code is not shown in the
            // group; the answer goes back there.
            None if event.is_private_link() => {
                let private = NewConversation {
                    platform: event.platform,
                    platform_chat_id: event.chat_id.clone(),
                    kind: ConversationKind::Private,
                    title: None,
                };
                let conversation = self.store.upsert_conversation(private, Utc::now()).await.map_err(unavailable)?;
                (conversation.id, answer_key(&event))
            }
            None => {
                let why = format!("{} chat {} is not a staff chat", event.platform, event.chat_id);
                return Err(IntakeError::Invalid(why));
            }
        };
        if self.store.outbox_by_key(&key).await.map_err(unavailable)?.is_some() {
            return Ok(());
        }
        let now = Utc::now();
        let Some(answer) = self.answer(&event, now).await? else { return Ok(()) };
        self.store
            .enqueue(NewOutbox::message(chat, answer, key, Priority::AUTOMATIC, now), now)
            .await
            .map_err(unavailable)?;
        self.wake.notify_one();
        Ok(())
    }

    fn commands(&self) -> Vec<webcare_domain::StaffCommand> {
        COMMANDS.iter().map(|&(name, args, what)| webcare_domain::StaffCommand { name, args, what }).collect()
    }
}

/// The outbox key of the answer to a command: one answer per command, however often it is delivered.
fn answer_key(event: &InboundEvent) -> String {
    format!("staff:{}:{}", event.platform, event.message_id)
}

/// The command an event carries, as (name, arguments): a platform command, or a message starting with `/` or `!`
/// (how a command is typed in a Discord channel). A name addressed to a bot (`/queue@webcare_bot`) loses the
/// address.
fn command_of(event: &InboundEvent) -> Option<(String, String)> {
    let (name, args) = match &event.kind {
        InboundKind::Command { name, args } => (name.clone(), args.clone()),
        InboundKind::Message => {
            let rest = event.text.trim().strip_prefix(['/', '!'])?;
            let (name, args) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            (name.to_owned(), args.to_owned())
        }
        _ => return None,
    };
    let name = name.split('@').next().unwrap_or_default().to_lowercase();
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some((name, args))
}

/// Why a command did not go through.
enum Failure {
    /// A refusal to tell the team as it is (not found, not allowed, claimed by someone else).
    Said(String),
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Store(e)
    }
}

impl From<TicketError> for Failure {
    fn from(e: TicketError) -> Self {
        match e {
            TicketError::Store(e) => Failure::Store(e),
            e => Failure::Said(sentence(&e.to_string())),
        }
    }
}

impl From<NoticeError> for Failure {
    fn from(e: NoticeError) -> Self {
        match e {
            NoticeError::Store(e) => Failure::Store(e),
            e => Failure::Said(sentence(&e.to_string())),
        }
    }
}

/// An error message as a sentence: capitalised, with a full stop.
fn sentence(s: &str) -> String {
    let mut chars = s.chars();
    let first = chars.next().map(|c| c.to_uppercase().collect::<String>()).unwrap_or_default();
    format!("{first}{}.", chars.as_str())
}

/// A notice's scope as the team writes it: services (comma-separated; `all`/`alle` for every service) and, after
/// `in`, places (comma-separated); without `in` it is nationwide. `internet,tv in Utrecht, Den Bosch`.
fn parse_scope(scope: &str) -> Result<(Vec<webcare_domain::Service>, Vec<String>), String> {
    let scope = scope.trim();
    // ASCII case folding keeps byte offsets, so a position in `lower` is one in `scope`.
    let lower = scope.to_ascii_lowercase();
    let (services, places) = match lower.find(" in ").or_else(|| lower.starts_with("in ").then_some(0)) {
        // The places keep the team's spelling; only the services are read case-blind.
        Some(at) => (&lower[..at], scope[at..].trim_start()[2..].trim()),
        None => (lower.as_str(), ""),
    };
    let mut list = Vec::new();
    for word in services.split([',', ' ']).map(str::trim).filter(|w| !w.is_empty()) {
        if matches!(word, "all" | "alle" | "every" | "everything") {
            list.clear();
            break;
        }
        let service = word
            .parse::<webcare_domain::Service>()
            .map_err(|_| format!("\"{word}\" is no service (internet, tv, mobile, landline, or all)."))?;
        if !list.contains(&service) {
            list.push(service);
        }
    }
    if services.trim().is_empty() && places.is_empty() {
        return Err("Say what the notice covers.".to_owned());
    }
    let regions: Vec<String> = places.split(',').map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned).collect();
    if !places.is_empty() && regions.is_empty() {
        return Err("Name the places after \"in\".".to_owned());
    }
    Ok((list, regions))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: InboundKind, text: &str) -> InboundEvent {
        InboundEvent {
            platform: Platform::Telegram,
            chat_id: "-100".into(),
            chat_kind: webcare_domain::ConversationKind::Public,
            chat_title: None,
            user_id: "1".into(),
            user_name: "ann".into(),
            from_bot: false,
            message_id: "-100/1".into(),
            text: text.into(),
            attachments: vec![],
            kind,
            place: None,
            language: None,
            account: String::new(),
            at: Utc::now(),
        }
    }

    #[test]
    fn commands_come_from_the_platform_or_a_leading_slash_or_bang() {
        let cmd = |name: &str, args: &str| InboundKind::Command { name: name.into(), args: args.into() };
        assert_eq!(command_of(&event(cmd("claim", "12"), "/claim 12")), Some(("claim".into(), "12".into())));
        assert_eq!(command_of(&event(cmd("Queue@webcare_bot", ""), "")), Some(("queue".into(), String::new())));
        assert_eq!(
            command_of(&event(InboundKind::Message, "  !reply 4 Hello there")),
            Some(("reply".into(), "4 Hello there".into()))
        );
        assert_eq!(command_of(&event(InboundKind::Message, "/QUEUE")), Some(("queue".into(), String::new())));
        assert_eq!(command_of(&event(InboundKind::Message, "lunch at one?")), None, "team talk");
        assert_eq!(command_of(&event(InboundKind::Message, "/ not a command")), None);
        assert_eq!(command_of(&event(InboundKind::Message, "/<b>")), None);
        assert_eq!(command_of(&event(InboundKind::Edited, "/claim 3")), None, "an edit does nothing again");
    }

    #[test]
    fn link_codes_are_unambiguous_and_match_however_they_are_typed() {
        let code = new_link_code();
        assert_eq!(code.len(), CODE_LEN);
        assert!(code.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{code}");
        assert_ne!(new_link_code(), code, "random");
        let typed = format!("{}-{} ", code[..5].to_lowercase(), &code[5..]);
        assert_eq!(link_code_hash(&typed), link_code_hash(&code));
        assert_ne!(link_code_hash("ABCDEFGHJK"), link_code_hash("ABCDEFGHJM"));
        assert_eq!(link_code_hash(&code).len(), 64, "SHA-256, hex");
    }

    #[test]
    fn a_scope_is_services_and_after_in_places() {
        use webcare_domain::Service::{Internet, Tv};
        let ok = |s: &str| parse_scope(s).unwrap();
        assert_eq!(ok("internet in Utrecht"), (vec![Internet], vec!["Utrecht".to_owned()]));
        assert_eq!(
            ok(" Internet, TV  in Den Bosch,  Zeist "),
            (vec![Internet, Tv], vec!["Den Bosch".to_owned(), "Zeist".to_owned()]),
            "places keep their spelling"
        );
        assert_eq!(ok("tv"), (vec![Tv], vec![]), "nationwide");
        assert_eq!(ok("all in Gent"), (vec![], vec!["Gent".to_owned()]), "every service");
        assert_eq!(ok("in 3512"), (vec![], vec!["3512".to_owned()]));
        assert_eq!(ok("internet internet"), (vec![Internet], vec![]));
        assert_eq!(ok("TV in İzmir, Ürdingen"), (vec![Tv], vec!["İzmir".to_owned(), "Ürdingen".to_owned()]));
        assert!(parse_scope("İnternet in Ürdingen").unwrap_err().contains("\"İnternet\" is no service"));
        assert!(parse_scope("gas in Utrecht").unwrap_err().contains("\"gas\" is no service"));
        assert!(parse_scope("  ").is_err());
        assert!(parse_scope("internet in , ").unwrap_err().contains("Name the places"));
    }

    #[test]
    fn a_title_names_the_scope() {
        let title = webcare_domain::notice_title;
        assert_eq!(title(&[webcare_domain::Service::Internet], &["Utrecht".into()]), "Storing internet Utrecht");
        assert_eq!(title(&[], &[]), "Storing");
    }

    #[test]
    fn errors_read_as_sentences() {
        assert_eq!(sentence("ticket is claimed by bo"), "Ticket is claimed by bo.");
    }
}
