//! The gateway side: serenity's events translated into webcare [`InboundEvent`]s for the [`Intake`].
//!
//! Customers are people who write in a DM with the bot, in a configured support channel, or in a thread of one (the
//! private threads webcare opens when a customer's DMs are closed among them). Everything else in a server is not
//! webcare's business and is not even stored. Messages of other bots and of webcare itself are reported with
//! `from_bot` so the intake ignores them by its one rule. Message ids are Discord's snowflakes, unique across
//! Discord, so a message the gateway replays after a resume is recognised and stored once; interactions use
//! `ia/<interaction id>`. Slash commands and button presses are answered at once (an ephemeral note, or a silent
//! acknowledgement) — the real answer comes through the outbox into the channel or DM.
//!
//! [`Intake`]: webcare_domain::Intake

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serenity::all::{
    Channel, ChannelType, CommandDataOptionValue, CommandInteraction, ComponentInteraction, Context,
    CreateInteractionResponse, CreateInteractionResponseMessage, EventHandler, Guild, GuildChannel, GuildId,
    Interaction, Message, MessageId, MessageType, MessageUpdateEvent, Ready, User,
};
use serenity::async_trait;
use webcare_domain::{
    ConversationKind, InboundEvent, InboundKind, IntakeError, Platform, Timestamp, answer_language, say,
};

use crate::{Author, ChannelInfo, Shared};

/// serenity's event handler for webcare.
pub struct Handler {
    shared: Arc<Shared>,
}

impl Handler {
    pub(crate) fn new(shared: Arc<Shared>) -> Handler {
        Handler { shared }
    }
}

/// When a snowflake was made, to the millisecond.
pub fn snowflake_time(id: u64) -> Timestamp {
    const DISCORD_EPOCH_MS: i64 = 1_420_070_400_000;
    chrono::DateTime::from_timestamp_millis((id >> 22) as i64 + DISCORD_EPOCH_MS).unwrap_or_else(Utc::now)
}

fn display_name(user: &User) -> String {
    user.global_name.clone().unwrap_or_else(|| user.name.clone())
}

fn is_customer_message(kind: MessageType) -> bool {
    matches!(kind, MessageType::Regular | MessageType::InlineReply)
}

fn event(chat: u64, kind: ConversationKind, user: &User, from_bot: bool, message_id: String) -> InboundEvent {
    InboundEvent {
        platform: Platform::Discord,
        chat_id: chat.to_string(),
        chat_kind: kind,
        chat_title: None,
        user_id: user.id.to_string(),
        user_name: display_name(user),
        from_bot,
        message_id,
        text: String::new(),
        attachments: Vec::new(),
        kind: InboundKind::Message,
        place: None,
        language: None,
        account: String::new(),
        at: Utc::now(),
    }
}

impl Shared {
    /// How webcare treats a channel: a DM or one of webcare's threads is private, a support channel public; `None`
    /// for channels webcare does not serve.
    pub(crate) async fn chat_kind(&self, channel: u64, guild: Option<GuildId>) -> Option<ConversationKind> {
        if guild.is_none() {
            return Some(ConversationKind::Private);
        }
        if self.support.contains(&channel) {
            return Some(ConversationKind::Public);
        }
        let info = match self.channel(channel) {
            Some(info) => info,
            None => match self.http.get_channel(channel.into()).await {
                Ok(Channel::Guild(c)) => {
                    let info = info_of(&c, None);
                    self.set_channel(channel, info);
                    info
                }
                Ok(_) => return None,
                Err(e) => {
                    tracing::warn!(platform = "discord", channel, error = %e, "could not look up a channel");
                    return None;
                }
            },
        };
        let in_support = info.parent.is_some_and(|p| self.support.contains(&p));
        match info.kind {
            ChannelType::PrivateThread if in_support => Some(ConversationKind::Private),
            ChannelType::PublicThread if in_support => Some(ConversationKind::Public),
            _ => None,
        }
    }

    /// Hands an event to the intake. While the database is unavailable it tries again with backoff for up to ten
    /// minutes: the gateway will not deliver the event again, so giving up early would lose it.
    pub(crate) async fn deliver(&self, event: InboundEvent) -> Result<webcare_domain::IntakeOutcome, IntakeError> {
        while_unavailable(&event.message_id, || self.intake.receive(event.clone())).await
    }

    /// Whether a message comes from a bot (webcare itself included) or a webhook.
    fn is_bot_message(&self, msg: &Message) -> bool {
        msg.author.bot || msg.webhook_id.is_some() || msg.author.id.get() == self.bot_id
    }

    fn remember_author(&self, message: u64, user: &User, kind: ConversationKind) {
        self.recent
            .lock()
            .expect("the recent map is never poisoned")
            .insert(message, Author { user_id: user.id.to_string(), user_name: display_name(user), chat_kind: kind });
    }
}

/// Runs `attempt` again with backoff while the database is unavailable, for up to ten minutes: the gateway will not
/// deliver the event (`id`) again, so giving up early would lose it.
async fn while_unavailable<T, Fut>(id: &str, mut attempt: impl FnMut() -> Fut) -> Result<T, IntakeError>
where
    Fut: std::future::Future<Output = Result<T, IntakeError>>,
{
    let mut wait = Duration::from_millis(250);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        match attempt().await {
            Err(IntakeError::Unavailable(why)) if tokio::time::Instant::now() + wait < deadline => {
                tracing::warn!(platform = "discord", message = %id, %why, "could not store a Discord event; trying again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
            other => return other,
        }
    }
}

fn info_of(c: &GuildChannel, permissions: Option<serenity::all::Permissions>) -> ChannelInfo {
    ChannelInfo { kind: c.kind, parent: c.parent_id.map(|p| p.get()), bot_permissions: permissions }
}

fn log_outcome(result: Result<webcare_domain::IntakeOutcome, IntakeError>, what: &str, id: &str) {
    match result {
        Ok(o) => tracing::debug!(platform = "discord", message = %id, action = %o.action, new = o.new, "{what}"),
        Err(e) => tracing::error!(platform = "discord", message = %id, error = %e, "{what} could not be stored"),
    }
}

#[async_trait]
impl EventHandler for Handler {
    async fn ready(&self, _ctx: Context, ready: Ready) {
        tracing::info!(platform = "discord", guilds = ready.guilds.len(), "connected to the Discord gateway");
        self.shared.register_commands(ready.application.id).await;
    }

    async fn guild_create(&self, _ctx: Context, guild: Guild, _is_new: Option<bool>) {
        let me = guild.members.get(&self.shared.bot_id.into());
        for c in guild.channels.values() {
            let perms = me.map(|m| guild.user_permissions_in(c, m));
            self.shared.set_channel(c.id.get(), info_of(c, perms));
        }
        for t in &guild.threads {
            self.shared.set_channel(t.id.get(), info_of(t, None));
        }
        if guild.channels.keys().any(|c| self.shared.staff.contains(&c.get())) {
            self.shared
                .staff_guilds
                .lock()
                .expect("the staff guild map is never poisoned")
                .entry(guild.id.get())
                .or_insert(false);
            self.shared.register_staff_commands().await;
        }
    }

    async fn thread_create(&self, _ctx: Context, thread: GuildChannel) {
        self.shared.set_channel(thread.id.get(), info_of(&thread, None));
    }

    async fn message(&self, _ctx: Context, msg: Message) {
        if !is_customer_message(msg.kind) {
            return;
        }
        let channel = msg.channel_id.get();
        if msg.guild_id.is_some() && self.shared.staff.contains(&channel) {
            return self.staff_message(channel, ConversationKind::Public, &msg).await;
        }
        let Some(kind) = self.shared.chat_kind(channel, msg.guild_id).await else { return };
        let from_bot = self.shared.is_bot_message(&msg);
        let mut e = event(channel, kind, &msg.author, from_bot, msg.id.to_string());
        e.text = msg.content.clone();
        // A team member linking their account in a DM with the bot, away from the team's channel.
        if !from_bot && self.shared.desk.is_some() && e.is_private_link() {
            return self.staff_message(channel, kind, &msg).await;
        }
        e.attachments = msg
            .attachments
            .iter()
            .map(|a| match a.content_type.as_deref() {
                Some(t) if t.starts_with("image/") => format!("photo: {}", a.filename),
                _ => format!("document: {}", a.filename),
            })
            .chain(msg.sticker_items.iter().map(|s| format!("sticker: {}", s.name)))
            .collect();
        e.at = snowflake_time(msg.id.get());
        if !from_bot {
            self.shared.remember_author(msg.id.get(), &msg.author, kind);
        }
        let id = e.message_id.clone();
        log_outcome(self.shared.deliver(e).await, "message", &id);
    }

    async fn message_update(
        &self,
        _ctx: Context,
        _old: Option<Message>,
        _new: Option<Message>,
        update: MessageUpdateEvent,
    ) {
        // Updates without content (an embed unfurled, a crosspost flag) are not edits by the customer.
        let (Some(author), Some(content)) = (update.author.as_ref(), update.content.as_ref()) else { return };
        if author.bot || author.id.get() == self.shared.bot_id {
            return;
        }
        let channel = update.channel_id.get();
        let Some(kind) = self.shared.chat_kind(channel, update.guild_id).await else { return };
        let mut e = event(channel, kind, author, false, update.id.to_string());
        e.kind = InboundKind::Edited;
        e.text = content.clone();
        let id = e.message_id.clone();
        log_outcome(self.shared.deliver(e).await, "edit", &id);
    }

    async fn message_delete(
        &self,
        _ctx: Context,
        channel: serenity::all::ChannelId,
        message: MessageId,
        _guild: Option<GuildId>,
    ) {
        // MESSAGE_DELETE names only the message: its author comes from what this process saw. A message from
        // before a restart stays stored undeleted, which keeps the ticket's history intact.
        let Some(author) = self.shared.recent.lock().expect("the recent map is never poisoned").get(message.get())
        else {
            return;
        };
        let e = InboundEvent {
            platform: Platform::Discord,
            chat_id: channel.to_string(),
            chat_kind: author.chat_kind,
            chat_title: None,
            user_id: author.user_id,
            user_name: author.user_name,
            from_bot: false,
            message_id: message.to_string(),
            text: String::new(),
            attachments: Vec::new(),
            kind: InboundKind::Deleted,
            place: None,
            language: None,
            account: String::new(),
            at: Utc::now(),
        };
        log_outcome(self.shared.deliver(e).await, "deletion", &message.to_string());
    }

    async fn interaction_create(&self, _ctx: Context, interaction: Interaction) {
        match interaction {
            Interaction::Command(cmd) => self.command(cmd).await,
            Interaction::Component(press) => self.button(press).await,
            _ => {}
        }
    }
}

/// A slash command's option values as the text that would follow its name when typed: `/ticket modem kapot`.
fn option_args(cmd: &CommandInteraction) -> String {
    cmd.data
        .options
        .iter()
        .filter_map(|o| match &o.value {
            CommandDataOptionValue::String(s) => Some(s.trim().to_owned()),
            CommandDataOptionValue::Integer(i) => Some(i.to_string()),
            CommandDataOptionValue::Boolean(b) => Some(b.to_string()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Handler {
    /// A message in one of the team's channels, or `/link CODE` in a DM: a command goes to the staff desk (which
    /// ignores the rest); it is never a customer's message. Like `deliver`, it tries again while the database is
    /// unavailable.
    async fn staff_message(&self, channel: u64, kind: ConversationKind, msg: &Message) {
        let from_bot = self.shared.is_bot_message(msg);
        let Some(desk) = self.shared.desk.as_ref().filter(|_| !from_bot) else { return };
        let mut e = event(channel, kind, &msg.author, false, msg.id.to_string());
        e.text = msg.content.clone();
        e.at = snowflake_time(msg.id.get());
        if let Err(why) = while_unavailable(&e.message_id, || desk.command(e.clone())).await {
            tracing::error!(platform = "discord", message = %e.message_id, error = %why,
                "a staff command was not carried out");
        }
    }

    async fn command(&self, cmd: CommandInteraction) {
        let channel = cmd.channel_id.get();
        let http = &self.shared.http;
        if let Some(desk) = self.shared.desk.as_ref().filter(|d| d.commands().iter().any(|c| c.name == cmd.data.name)) {
            return self.staff_command(desk.clone(), cmd).await;
        }
        // The language of the person's Discord app (`nl`, `en-US`); a message carries none, an interaction does.
        let language = answer_language(&cmd.locale);
        let Some(kind) = self.shared.chat_kind(channel, cmd.guild_id).await else {
            let note = say(
                language,
                "Stel je vraag in een supportkanaal of in een DM aan mij.",
                "Ask in a support channel or DM me.",
            );
            let answer = CreateInteractionResponse::Message(
                CreateInteractionResponseMessage::new().content(note).ephemeral(true),
            );
            if let Err(e) = cmd.create_response(http, answer).await {
                tracing::warn!(platform = "discord", error = %e, "could not answer a slash command");
            }
            return;
        };
        let args = option_args(&cmd);
        let mut e = event(channel, kind, &cmd.user, cmd.user.bot, format!("ia/{}", cmd.id));
        e.kind = InboundKind::Command { name: cmd.data.name.clone(), args: args.clone() };
        e.text = format!("/{} {args}", cmd.data.name).trim_end().to_owned();
        e.at = snowflake_time(cmd.id.get());
        e.language = Some(cmd.locale.clone());
        // Discord wants an answer within 3 seconds; storing may take longer, so both run at once.
        let note = say(language, "Ontvangen, het antwoord volgt hier.", "Received, the answer follows here.");
        let answer =
            CreateInteractionResponse::Message(CreateInteractionResponseMessage::new().content(note).ephemeral(true));
        let id = e.message_id.clone();
        let (answered, stored) = tokio::join!(cmd.create_response(http, answer), self.shared.deliver(e));
        if let Err(e) = answered {
            tracing::warn!(platform = "discord", error = %e, "could not answer a slash command");
        }
        log_outcome(stored, "slash command", &id);
    }

    /// One of the staff desk's slash commands: in a staff channel it goes to the desk as if typed (`/claim 12`),
    /// and the desk's answer follows in the channel; anywhere else it is refused with a note only its user sees.
    async fn staff_command(&self, desk: Arc<dyn webcare_domain::StaffDesk>, cmd: CommandInteraction) {
        let channel = cmd.channel_id.get();
        let http = &self.shared.http;
        let ephemeral = |note: &str| {
            CreateInteractionResponse::Message(CreateInteractionResponseMessage::new().content(note).ephemeral(true))
        };
        if cmd.guild_id.is_none() || !self.shared.staff.contains(&channel) {
            let note = "Dit commando werkt alleen in het kanaal van het team. / This command works in the team's channel only.";
            if let Err(e) = cmd.create_response(http, ephemeral(note)).await {
                tracing::warn!(platform = "discord", error = %e, "could not answer a slash command");
            }
            return;
        }
        let args = option_args(&cmd);
        let mut e = event(channel, ConversationKind::Public, &cmd.user, cmd.user.bot, format!("ia/{}", cmd.id));
        e.text = format!("/{} {args}", cmd.data.name).trim_end().to_owned();
        e.at = snowflake_time(cmd.id.get());
        // Discord wants an answer within 3 seconds; the desk may take longer, so both run at once.
        let note = "Ontvangen, het antwoord volgt hier. / Received, the answer follows here.";
        let id = e.message_id.clone();
        let (answered, done) = tokio::join!(
            cmd.create_response(http, ephemeral(note)),
            while_unavailable(&id, || desk.command(e.clone()))
        );
        if let Err(e) = answered {
            tracing::warn!(platform = "discord", error = %e, "could not answer a slash command");
        }
        if let Err(why) = done {
            tracing::error!(platform = "discord", message = %id, error = %why, "a staff command was not carried out");
        }
    }

    async fn button(&self, press: ComponentInteraction) {
        let channel = press.channel_id.get();
        let http = &self.shared.http;
        let kind = self.shared.chat_kind(channel, press.guild_id).await;
        let ack = press.create_response(http, CreateInteractionResponse::Acknowledge);
        let Some(kind) = kind else {
            if let Err(e) = ack.await {
                tracing::warn!(platform = "discord", error = %e, "could not acknowledge a button");
            }
            return;
        };
        let mut e = event(channel, kind, &press.user, press.user.bot, format!("ia/{}", press.id));
        e.kind = InboundKind::Button { data: press.data.custom_id.clone() };
        e.at = snowflake_time(press.id.get());
        e.language = Some(press.locale.clone());
        let id = e.message_id.clone();
        let (answered, stored) = tokio::join!(ack, self.shared.deliver(e));
        if let Err(e) = answered {
            tracing::warn!(platform = "discord", error = %e, "could not acknowledge a button");
        }
        log_outcome(stored, "button", &id);
    }
}
