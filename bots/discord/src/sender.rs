//! The outbound side: outbox rows become Discord messages, and notices become posts in the announcement channels.
//!
//! Every message is escaped ([`crate::text`]), carries `allowed_mentions` with nothing allowed, and is split when
//! longer than Discord allows. A row whose `extra` holds `move_private` continues a case in private: after the
//! public answer (which never repeats the customer's data) the bot opens a DM with the customer, or a private thread
//! in the channel when Discord answers 50007 (DMs closed), tells the intake that the customer continues there
//! (a synthetic `/start <link>` in that chat, which moves the ticket), and deletes the public message where it may.
//! A row is retried as a whole, so each step that succeeded is remembered per row and not repeated.
//! Rate limits are not waited out here: a 429, or a bucket known to be empty, is handed back with its scope.

use std::sync::Arc;

use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use serenity::all::{
    ButtonStyle, Channel, ChannelId, ChannelType, CreateActionRow, CreateAllowedMentions, CreateButton, CreateMessage,
    MessageId, Permissions, UserId,
};
use serenity::http::{LightMethod, Route};
use webcare_domain::{
    Conversation, ConversationKind, InboundEvent, InboundKind, IntakeError, OutboxId, OutboxItem, Platform, SendError,
    Sender, Sent,
};

use crate::rest::{RestError, codes};
use crate::text::{MAX_CONTENT, escape, split};
use crate::{ChannelInfo, Shared};

/// Delivers outbox rows to Discord and posts notices. Cheap to clone.
#[derive(Clone)]
pub struct DiscordSender {
    shared: Arc<Shared>,
}

/// A notice that did not reach every announcement channel: where it went and where it did not.
#[derive(Debug, thiserror::Error)]
#[error("the notice was not posted in {} of {} announcement channels", failed.len(), failed.len() + sent.len())]
pub struct AnnounceError {
    pub sent: Vec<(u64, Sent)>,
    pub failed: Vec<(u64, SendError)>,
}

/// What a row has done so far, kept while it is retried.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    /// Parts of the body already sent, and the first part's message id.
    parts_sent: usize,
    first: Option<String>,
    dm: Option<u64>,
    user_name: Option<String>,
    thread: Option<u64>,
    thread_member: bool,
    /// The private chat the case continues in, once the customer has been told there.
    private: Option<u64>,
    /// Neither a DM nor a private thread could be opened.
    no_private: bool,
    moved: bool,
    deleted: bool,
}

#[derive(Debug, Deserialize)]
struct Button {
    text: String,
    data: String,
}

#[derive(Debug, Deserialize)]
struct MovePrivate {
    ticket: Value,
    link: String,
    user: String,
    #[serde(default)]
    message: Option<String>,
}

fn snowflake(s: &str) -> Option<u64> {
    s.trim().parse::<u64>().ok().filter(|n| *n > 0)
}

fn first_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

impl DiscordSender {
    pub(crate) fn new(shared: Arc<Shared>) -> DiscordSender {
        DiscordSender { shared }
    }

    /// The bot's own user id.
    pub fn bot_user_id(&self) -> u64 {
        self.shared.bot_id
    }

    /// The configured announcement channels.
    pub fn announcement_channels(&self) -> &[u64] {
        &self.shared.announcement_channels
    }

    /// Posts a notice once in each configured announcement channel, crossposting it where the channel is an
    /// announcement channel so servers that follow it get it too. Tries every channel; the error says which
    /// failed, so a caller retries only those with [`DiscordSender::announce_in`].
    pub async fn announce(&self, text: &str) -> Result<Vec<(u64, Sent)>, AnnounceError> {
        let mut sent = Vec::new();
        let mut failed = Vec::new();
        for channel in self.shared.announcement_channels.clone() {
            match self.announce_in(channel, text).await {
                Ok(s) => sent.push((channel, s)),
                Err(e) => {
                    tracing::warn!(platform = "discord", channel, error = %e, "a notice was not posted");
                    failed.push((channel, e));
                }
            }
        }
        if failed.is_empty() { Ok(sent) } else { Err(AnnounceError { sent, failed }) }
    }

    /// Posts a notice in one channel and crossposts it when that is an announcement channel.
    pub async fn announce_in(&self, channel: u64, text: &str) -> Result<Sent, SendError> {
        let mut first = None;
        for part in split(&escape(text), MAX_CONTENT) {
            let id = self
                .post(channel, &part, &[])
                .await
                .map_err(|e| e.into_send_error(Some(&chat(channel)), "messages"))?;
            self.crosspost(channel, &id).await;
            first.get_or_insert(id);
        }
        Ok(Sent { platform_message_id: first })
    }

    /// Creates a message; returns its id.
    async fn post(&self, channel: u64, content: &str, buttons: &[Button]) -> Result<String, RestError> {
        let mut message =
            CreateMessage::new().content(content).allowed_mentions(CreateAllowedMentions::new().replied_user(false));
        if !buttons.is_empty() {
            // Discord allows five buttons per row and five rows.
            let rows = buttons
                .chunks(5)
                .take(5)
                .map(|row| {
                    CreateActionRow::Buttons(
                        row.iter()
                            .map(|b| {
                                CreateButton::new(first_chars(&b.data, 100))
                                    .label(first_chars(&b.text, 80))
                                    .style(ButtonStyle::Primary)
                            })
                            .collect(),
                    )
                })
                .collect();
            message = message.components(rows);
        }
        let body = serde_json::to_value(&message).expect("a message builder serialises");
        let answer = self
            .shared
            .rest
            .call(
                Route::ChannelMessages { channel_id: ChannelId::new(channel) },
                LightMethod::Post,
                Some(&body),
                &format!("messages:{channel}"),
            )
            .await?;
        Ok(answer["id"].as_str().unwrap_or_default().to_owned())
    }

    async fn channel_kind(&self, channel: u64) -> Option<ChannelType> {
        if let Some(info) = self.shared.channel(channel) {
            return Some(info.kind);
        }
        match self.shared.http.get_channel(channel.into()).await {
            Ok(Channel::Guild(c)) => {
                self.shared.set_channel(
                    channel,
                    ChannelInfo { kind: c.kind, parent: c.parent_id.map(|p| p.get()), bot_permissions: None },
                );
                Some(c.kind)
            }
            _ => None,
        }
    }

    /// Crossposts a message in an announcement channel; anything else is left alone. A failure is logged, not
    /// returned: the post itself went out, and Discord allows only 10 crossposts per hour per channel.
    async fn crosspost(&self, channel: u64, message: &str) {
        if self.channel_kind(channel).await != Some(ChannelType::News) {
            return;
        }
        let Some(id) = snowflake(message) else { return };
        let route =
            Route::ChannelMessageCrosspost { channel_id: ChannelId::new(channel), message_id: MessageId::new(id) };
        if let Err(e) = self.shared.rest.call(route, LightMethod::Post, None, &format!("crosspost:{channel}")).await {
            tracing::warn!(platform = "discord", channel, error = %e, "could not crosspost a notice");
        }
    }

    async fn send_row(
        &self,
        to: &Conversation,
        channel: u64,
        item: &OutboxItem,
        p: &mut Progress,
    ) -> Result<Sent, SendError> {
        let buttons: Vec<Button> =
            item.extra.get("buttons").and_then(|b| serde_json::from_value(b.clone()).ok()).unwrap_or_default();
        let parts = split(&escape(&item.body), MAX_CONTENT);
        if parts.is_empty() {
            return Err(SendError::Rejected("an empty message".into()));
        }
        let last = parts.len() - 1;
        for (i, part) in parts.iter().enumerate().skip(p.parts_sent) {
            let row_buttons = if i == last { &buttons[..] } else { &[] };
            let id = self
                .post(channel, part, row_buttons)
                .await
                .map_err(|e| e.into_send_error(Some(&to.platform_chat_id), "messages"))?;
            p.first.get_or_insert(id);
            p.parts_sent = i + 1;
        }
        if item.extra.get("crosspost").and_then(Value::as_bool) == Some(true)
            && let Some(first) = p.first.clone()
        {
            self.crosspost(channel, &first).await;
        }
        if let Some(raw) = item.extra.get("move_private") {
            match serde_json::from_value::<MovePrivate>(raw.clone()) {
                Ok(mv) if to.kind == ConversationKind::Public => self.move_private(channel, item, &mv, p).await?,
                Ok(_) => {}
                Err(e) => tracing::warn!(platform = "discord", outbox = %item.id, error = %e,
                    "a move to private chat could not be read"),
            }
        }
        Ok(Sent { platform_message_id: p.first.clone() })
    }

    /// Continues a public case in private: a DM, or a private thread when DMs are closed; then the intake hears that
    /// the customer continues there, and the public message with the private data is deleted.
    async fn move_private(
        &self,
        channel: u64,
        item: &OutboxItem,
        mv: &MovePrivate,
        p: &mut Progress,
    ) -> Result<(), SendError> {
        let Some(user) = snowflake(&mv.user) else {
            tracing::warn!(platform = "discord", outbox = %item.id, "a move to private chat names no Discord user");
            return Ok(());
        };
        let ticket = match &mv.ticket {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if p.private.is_none() && !p.no_private {
            self.open_private(channel, user, &ticket, p).await?;
        }
        if let Some(private) = p.private
            && !p.moved
        {
            let name = p
                .user_name
                .clone()
                .or_else(|| self.author_name(mv.message.as_deref()))
                .unwrap_or_else(|| user.to_string());
            let event = InboundEvent {
                platform: Platform::Discord,
                chat_id: private.to_string(),
                chat_kind: ConversationKind::Private,
                chat_title: None,
                user_id: user.to_string(),
                user_name: name,
                from_bot: false,
                message_id: format!("move/{}", item.id),
                text: "/start".into(),
                attachments: Vec::new(),
                kind: InboundKind::Command { name: "start".into(), args: mv.link.clone() },
                place: None,
                // The language the public answer was in, so the private chat goes on in it.
                language: item.extra["language"].as_str().map(str::to_owned),
                account: String::new(),
                at: Utc::now(),
            };
            match self.shared.intake.receive(event).await {
                Ok(_) => {}
                Err(IntakeError::Unavailable(why)) => return Err(SendError::Transient(why)),
                Err(IntakeError::Invalid(why)) => {
                    tracing::warn!(platform = "discord", outbox = %item.id, %why, "the private chat was refused")
                }
            }
            p.moved = true;
        }
        if !p.deleted {
            if let Some(message) = mv.message.as_deref().and_then(snowflake) {
                self.delete_public(channel, message).await?;
            }
            p.deleted = true;
        }
        Ok(())
    }

    /// The display name of the author of a message this process saw.
    fn author_name(&self, message: Option<&str>) -> Option<String> {
        let id = snowflake(message?)?;
        self.shared.recent.lock().expect("the recent map is never poisoned").get(id).map(|a| a.user_name)
    }

    /// Opens the private chat and greets the customer there: a DM, or on 50007 a private thread under `channel`.
    async fn open_private(&self, channel: u64, user: u64, ticket: &str, p: &mut Progress) -> Result<(), SendError> {
        let closed = self.shared.dm_closed.lock().expect("the DM set is never poisoned").contains(&user);
        if !closed {
            let dm = match p.dm {
                Some(dm) => dm,
                None => {
                    let body = json!({"recipient_id": user.to_string()});
                    let answer = self
                        .shared
                        .rest
                        .call(Route::UserMeDmChannels, LightMethod::Post, Some(&body), "dm")
                        .await
                        .map_err(|e| e.into_send_error(None, "POST /users/@me/channels"))?;
                    let Some(dm) = answer["id"].as_str().and_then(snowflake) else {
                        return Err(SendError::Transient("Discord opened a DM without an id".into()));
                    };
                    let recipient = &answer["recipients"][0];
                    p.user_name =
                        recipient["global_name"].as_str().or_else(|| recipient["username"].as_str()).map(str::to_owned);
                    p.dm = Some(dm);
                    dm
                }
            };
            let hello = format!(
                "Hoi! Dit gaat over je bericht in <#{channel}>. Deel persoonlijke gegevens alleen hier, niet in het \
                 openbare kanaal. / Hi! This is about your message in <#{channel}>. Please share personal details only \
                 here, not in the public channel."
            );
            match self.post(dm, &hello, &[]).await {
                Ok(_) => {
                    p.private = Some(dm);
                    return Ok(());
                }
                Err(e) if e.code() == Some(codes::CANNOT_MESSAGE_USER) => {
                    tracing::info!(
                        platform = "discord",
                        channel,
                        "the customer's DMs are closed; using a private thread"
                    );
                    self.shared.dm_closed.lock().expect("the DM set is never poisoned").insert(user);
                }
                Err(e) => return Err(e.into_send_error(Some(&dm.to_string()), "messages")),
            }
        }
        if self.shared.may(channel, Permissions::CREATE_PRIVATE_THREADS) == Some(false) {
            tracing::warn!(
                platform = "discord",
                channel,
                "the customer's DMs are closed and the bot may not create private threads here; the case stays public"
            );
            p.no_private = true;
            return Ok(());
        }
        let thread = match p.thread {
            Some(t) => t,
            None => {
                let body = json!({
                    "name": format!("Zaak {ticket} / Case {ticket}"),
                    "type": 12,
                    "invitable": false,
                    "auto_archive_duration": 10080,
                });
                let route = Route::ChannelThreads { channel_id: ChannelId::new(channel) };
                let answer = match self
                    .shared
                    .rest
                    .call(route, LightMethod::Post, Some(&body), &format!("threads:{channel}"))
                    .await
                {
                    Ok(a) => a,
                    Err(RestError::Api { status, code, message }) if status < 500 => {
                        tracing::warn!(platform = "discord", channel, status, code, %message,
                            "could not open a private thread; the case stays public");
                        if code == codes::MISSING_PERMISSIONS {
                            self.shared.forbid(channel, Permissions::CREATE_PRIVATE_THREADS);
                        }
                        p.no_private = true;
                        return Ok(());
                    }
                    Err(e) => return Err(e.into_send_error(Some(&channel.to_string()), "threads")),
                };
                let Some(t) = answer["id"].as_str().and_then(snowflake) else {
                    return Err(SendError::Transient("Discord created a thread without an id".into()));
                };
                // Messages in the thread are the customer's from now on.
                self.shared.set_channel(
                    t,
                    ChannelInfo { kind: ChannelType::PrivateThread, parent: Some(channel), bot_permissions: None },
                );
                p.thread = Some(t);
                t
            }
        };
        if !p.thread_member {
            let route = Route::ChannelThreadMember { channel_id: ChannelId::new(thread), user_id: UserId::new(user) };
            self.shared
                .rest
                .call(route, LightMethod::Put, None, &format!("thread-members:{thread}"))
                .await
                .map_err(|e| e.into_send_error(Some(&thread.to_string()), "thread-members"))?;
            p.thread_member = true;
        }
        let hello = format!(
            "Hoi <@{user}>! Je DM's staan dicht, daarom gaan we hier verder, in een privé-thread die alleen jij en wij \
             zien. Deel persoonlijke gegevens alleen hier. / Hi <@{user}>! Your DMs are closed, so we continue in this \
             private thread that only you and we can see. Please share personal details only here."
        );
        self.post(thread, &hello, &[]).await.map_err(|e| e.into_send_error(Some(&thread.to_string()), "messages"))?;
        p.private = Some(thread);
        Ok(())
    }

    /// Deletes the customer's public message with private data, where the bot has Manage Messages and
    /// `discord.delete_private_data` is on. Without the permission the message stays; that is no reason to fail.
    async fn delete_public(&self, channel: u64, message: u64) -> Result<(), SendError> {
        if !self.shared.delete_private_data {
            return Ok(());
        }
        if self.shared.may(channel, Permissions::MANAGE_MESSAGES) == Some(false) {
            tracing::info!(platform = "discord", channel, "no Manage Messages here; the public message stays");
            return Ok(());
        }
        let route = Route::ChannelMessage { channel_id: ChannelId::new(channel), message_id: MessageId::new(message) };
        match self.shared.rest.call(route, LightMethod::Delete, None, &format!("delete:{channel}")).await {
            Ok(_) => Ok(()),
            Err(RestError::Api { code: codes::MISSING_PERMISSIONS, .. }) => {
                tracing::info!(platform = "discord", channel, "no Manage Messages here; the public message stays");
                self.shared.forbid(channel, Permissions::MANAGE_MESSAGES);
                Ok(())
            }
            Err(RestError::Api { code: codes::UNKNOWN_MESSAGE, .. }) => Ok(()),
            Err(RestError::Api { status, code, message }) if status < 500 => {
                tracing::warn!(platform = "discord", channel, status, code, %message, "could not delete a message");
                Ok(())
            }
            Err(e) => Err(e.into_send_error(Some(&channel.to_string()), "delete")),
        }
    }
}

fn chat(channel: u64) -> String {
    channel.to_string()
}

#[async_trait::async_trait]
impl Sender for DiscordSender {
    fn platform(&self) -> Platform {
        Platform::Discord
    }

    async fn send(&self, to: &Conversation, item: &OutboxItem) -> Result<Sent, SendError> {
        if item.kind != "message" {
            return Err(SendError::Rejected(format!("the Discord adapter does not send `{}` rows", item.kind)));
        }
        let Some(channel) = snowflake(&to.platform_chat_id) else {
            return Err(SendError::Rejected(format!("`{}` is not a Discord channel id", to.platform_chat_id)));
        };
        let mut progress = self.take_progress(item.id);
        let result = self.send_row(to, channel, item, &mut progress).await;
        if let Err(e) = &result
            && !matches!(e, SendError::Rejected(_) | SendError::Unreachable(_))
        {
            // Retried later: remember what is done so it is not done twice. Rows that never come back (given up
            // after their attempts) would pile up; past a bound the oldest knowledge goes, at worst a duplicate.
            let mut moves = self.shared.moves.lock().expect("the progress map is never poisoned");
            if moves.len() >= 10_000 {
                moves.clear();
            }
            moves.insert(item.id, progress);
        }
        result
    }
}

impl DiscordSender {
    fn take_progress(&self, id: OutboxId) -> Progress {
        self.shared.moves.lock().expect("the progress map is never poisoned").remove(&id).unwrap_or_default()
    }
}
