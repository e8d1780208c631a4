//! The user side: what people (and other bots) do in the fake, as the gateway then reports it to the bot. A user
//! posts in a guild channel or a thread (joining the guild on first post, as Discord tracks members), writes to the
//! bot in a DM, edits or deletes their message, runs a registered slash command, or presses a button on one of the
//! bot's messages. Mentions, replies and attachments get the fields Discord derives from them.

use serde_json::{Value, json};
use tokio::time::Instant;

use crate::clock::now_iso;
use crate::payload::parse_mentions;
use crate::types::{
    ChannelId, InteractionId, InteractionRecord, MessageId, OptionValue, Posted, SlashCommand, Started, UserId,
    UserMessage, permissions,
};
use crate::world::{Dispatch, InteractionRec, MemberRec, MsgRec, World};

/// What started an interaction: a slash command (by name) or a button on a message.
enum Origin {
    Command(String),
    Component(u64),
}

impl World {
    /// Checks a user may write in a channel; joins them to its guild (and thread) if needed.
    fn user_enters(&mut self, from: UserId, channel: ChannelId) -> Result<(), String> {
        let user = self.users.get(&from.0).ok_or_else(|| format!("no user {from}"))?;
        let _ = user;
        let c = self.channels.get(&channel.0).ok_or_else(|| format!("no channel {channel}"))?.clone();
        match c.guild_id {
            Some(g) => {
                let guild = self.guilds.get_mut(&g).ok_or_else(|| format!("no guild {g}"))?;
                guild.members.entry(from.0).or_insert_with(|| MemberRec { roles: vec![], joined_at: now_iso() });
                if let Some(t) = self.channels.get_mut(&channel.0).and_then(|c| c.thread.as_mut()) {
                    t.members.insert(from.0);
                }
            }
            None if c.recipient == Some(from.0) => {}
            None => return Err(format!("{from} is not the recipient of DM channel {channel}")),
        }
        Ok(())
    }

    pub fn user_posts(&mut self, from: UserId, channel: ChannelId, msg: UserMessage) -> Result<Posted, String> {
        self.user_enters(from, channel)?;
        let referenced = match msg.reply_to {
            Some(r) => Some(
                self.messages
                    .get(&(channel.0, r.0))
                    .filter(|m| !m.deleted)
                    .cloned()
                    .ok_or_else(|| format!("no message {r} in {channel}"))?,
            ),
            None => None,
        };
        let (id, mut json) = self.new_message_json(channel.0, from.0, if referenced.is_some() { 19 } else { 0 });
        let guild = self.channels[&channel.0].guild_id;
        let (users, roles, everyone) = parse_mentions(&msg.content);
        let mut mentioned: Vec<u64> =
            users.into_iter().filter(|u| self.users.contains_key(u) || *u == self.bot_id).collect();
        if let Some(r) = &referenced
            && !mentioned.contains(&r.author_id)
        {
            // A reply pings its author unless the user switches that off; clients mention them by default.
            mentioned.push(r.author_id);
        }
        let guild_roles: Vec<u64> =
            guild.and_then(|g| self.guilds.get(&g)).map(|g| g.roles.iter().map(|r| r.id).collect()).unwrap_or_default();
        let everyone =
            everyone && guild.is_some_and(|g| self.permissions_of(g, from.0) & permissions::MENTION_EVERYONE != 0);
        json["content"] = json!(msg.content);
        json["mention_everyone"] = json!(everyone);
        json["mentions"] = Value::Array(mentioned.iter().map(|u| self.user_json(*u)).collect());
        json["mention_roles"] =
            Value::Array(roles.iter().filter(|r| guild_roles.contains(r)).map(|r| json!(r.to_string())).collect());
        let mut attachments = Vec::new();
        for a in msg.attachments {
            let aid = self.ids.next();
            let path = format!("/attachments/{}/{aid}/{}", channel.0, a.filename);
            let url = format!("{}{path}", self.base_url());
            attachments.push(json!({
                "id": aid.to_string(),
                "filename": a.filename,
                "size": a.bytes.len(),
                "url": url,
                "proxy_url": url,
                "content_type": a.content_type,
            }));
            self.attachments.insert(path, (a.content_type, a.bytes));
        }
        json["attachments"] = Value::Array(attachments);
        if let Some(r) = &referenced {
            let mut reference = json!({"type": 0, "channel_id": channel.0.to_string(), "message_id": r.json["id"]});
            if let Some(g) = guild {
                reference["guild_id"] = json!(g.to_string());
            }
            json["message_reference"] = reference;
            json["referenced_message"] = r.json.clone();
        }
        self.store_message(MsgRec { json, channel_id: channel.0, author_id: from.0, deleted: false, bot: None });
        Ok(Posted { channel_id: channel, message_id: MessageId(id) })
    }

    pub fn user_edits(
        &mut self,
        from: UserId,
        channel: ChannelId,
        message: MessageId,
        content: &str,
    ) -> Result<(), String> {
        let rec = self
            .messages
            .get_mut(&(channel.0, message.0))
            .filter(|m| !m.deleted)
            .ok_or_else(|| format!("no message {message} in {channel}"))?;
        if rec.author_id != from.0 {
            return Err(format!("{from} did not write {message}"));
        }
        rec.json["content"] = json!(content);
        rec.json["edited_timestamp"] = json!(now_iso());
        let (users, _, _) = parse_mentions(content);
        let mentioned: Vec<Value> = users
            .into_iter()
            .filter(|u| self.users.contains_key(u) || *u == self.bot_id)
            .map(|u| self.user_json(u))
            .collect();
        if let Some(rec) = self.messages.get_mut(&(channel.0, message.0)) {
            rec.json["mentions"] = Value::Array(mentioned);
        }
        self.emit_message("MESSAGE_UPDATE", channel.0, message.0);
        Ok(())
    }

    pub fn user_deletes(&mut self, from: UserId, channel: ChannelId, message: MessageId) -> Result<(), String> {
        let rec = self
            .messages
            .get_mut(&(channel.0, message.0))
            .filter(|m| !m.deleted)
            .ok_or_else(|| format!("no message {message} in {channel}"))?;
        if rec.author_id != from.0 {
            return Err(format!("{from} did not write {message}"));
        }
        rec.deleted = true;
        self.emit_message_delete(channel.0, message.0);
        Ok(())
    }

    /// The fields every interaction has; `kind` 2 (command) or 3 (component).
    fn interaction_json(&mut self, from: UserId, channel: ChannelId, kind: u8, data: Value) -> (u64, String, Value) {
        let id = self.ids.next();
        let token = format!("aW50ZXJhY3Rpb246{id}OmZha2U{:08x}", self.token_serial().wrapping_mul(0x9e37_79b9));
        let guild = self.channels[&channel.0].guild_id;
        let mut channel_json = self.channel_json(channel.0);
        let app_permissions = self.bot_permissions_in_channel(channel.0);
        let mut v = json!({
            "id": id.to_string(),
            "application_id": self.config.application_id.to_string(),
            "type": kind,
            "data": data,
            "channel_id": channel.0.to_string(),
            "token": token,
            "version": 1,
            "app_permissions": app_permissions.to_string(),
            "locale": self.users[&from.0].user.locale,
            "entitlements": [],
            "attachment_size_limit": 10_485_760,
        });
        match guild {
            Some(g) => {
                let perms = self.permissions_of(g, from.0);
                let mut member = self.member_json(g, from.0, true);
                member["permissions"] = json!(perms.to_string());
                channel_json["permissions"] = json!(perms.to_string());
                v["guild_id"] = json!(g.to_string());
                v["guild"] = json!({"id": g.to_string(), "locale": "nl", "features": []});
                v["guild_locale"] = json!("nl");
                v["member"] = member;
                v["authorizing_integration_owners"] = json!({"0": g.to_string()});
                v["context"] = json!(0);
            }
            None => {
                v["user"] = self.user_json(from.0);
                v["authorizing_integration_owners"] = json!({"0": "0"});
                v["context"] = json!(1);
            }
        }
        v["channel"] = channel_json;
        (id, token, v)
    }

    fn start_interaction(
        &mut self,
        from: UserId,
        channel: ChannelId,
        payload: (u64, String, Value),
        origin: Origin,
        now: Instant,
    ) -> Started {
        let (kind, message_id, command_name) = match origin {
            Origin::Command(name) => (2, None, Some(name)),
            Origin::Component(message) => (3, Some(message), None),
        };
        let (id, token, v) = payload;
        let guild_id = self.channels[&channel.0].guild_id;
        self.interactions.insert(
            id,
            InteractionRec {
                record: InteractionRecord {
                    id: InteractionId(id),
                    token: token.clone(),
                    kind,
                    channel_id: channel,
                    user_id: from,
                    callbacks: vec![],
                    refused_callbacks: vec![],
                    original: None,
                    followups: vec![],
                },
                guild_id,
                message_id,
                command_name,
                created: now,
            },
        );
        self.interaction_tokens.insert(token.clone(), id);
        self.emit(Dispatch { t: "INTERACTION_CREATE", d: v, guild_id, intent: None, content_exempt: true });
        Started { interaction_id: InteractionId(id), token }
    }

    /// A user runs a slash command the bot registered (in this guild, or globally).
    pub fn run_command(
        &mut self,
        from: UserId,
        channel: ChannelId,
        cmd: SlashCommand,
        now: Instant,
    ) -> Result<Started, String> {
        self.user_enters(from, channel)?;
        let guild = self.channels[&channel.0].guild_id;
        let registered = guild
            .and_then(|g| self.commands.get(&Some(g)).and_then(|m| m.get(&cmd.name)))
            .or_else(|| self.commands.get(&None).and_then(|m| m.get(&cmd.name)))
            .map(|c| c.json.clone())
            .ok_or_else(|| format!("the bot registered no command /{} here", cmd.name))?;
        if guild.is_none() && registered["dm_permission"] == json!(false) {
            return Err(format!("/{} cannot be used in DMs", cmd.name));
        }
        let declared = registered["options"].as_array().cloned().unwrap_or_default();
        for o in &declared {
            let name = o["name"].as_str().unwrap_or_default();
            if o["required"] == json!(true) && !cmd.options.iter().any(|(n, _)| n == name) {
                return Err(format!("/{} needs option {name}", cmd.name));
            }
        }
        let mut options = Vec::new();
        let mut resolved = json!({});
        for (name, value) in &cmd.options {
            let decl = declared
                .iter()
                .find(|o| o["name"] == json!(name))
                .ok_or_else(|| format!("/{} has no option {name}", cmd.name))?;
            let kind = decl["type"].as_u64().unwrap_or(u64::from(value.option_type()));
            let v = match value {
                OptionValue::String(s) => json!(s),
                OptionValue::Integer(i) => json!(i),
                OptionValue::Boolean(b) => json!(b),
                OptionValue::Number(n) => json!(n),
                OptionValue::User(u) => {
                    resolved["users"][u.0.to_string()] = self.user_json(u.0);
                    if let Some(g) = guild {
                        resolved["members"][u.0.to_string()] = self.member_json(g, u.0, false);
                    }
                    json!(u.0.to_string())
                }
                OptionValue::Channel(c) => {
                    let mut ch = self.channel_json(c.0);
                    ch["permissions"] = json!(self.bot_permissions_in_channel(c.0).to_string());
                    resolved["channels"][c.0.to_string()] = ch;
                    json!(c.0.to_string())
                }
            };
            options.push(json!({"name": name, "type": kind, "value": v}));
        }
        let mut data = json!({"id": registered["id"], "name": cmd.name, "type": 1});
        if !options.is_empty() {
            data["options"] = Value::Array(options);
        }
        if resolved.as_object().is_some_and(|o| !o.is_empty()) {
            data["resolved"] = resolved;
        }
        if let Some(g) = registered.get("guild_id") {
            data["guild_id"] = g.clone();
        }
        let payload = self.interaction_json(from, channel, 2, data);
        Ok(self.start_interaction(from, channel, payload, Origin::Command(cmd.name), now))
    }

    /// A user presses the button with this `custom_id` on one of the bot's messages.
    pub fn press_button(
        &mut self,
        from: UserId,
        channel: ChannelId,
        message: MessageId,
        custom_id: &str,
        now: Instant,
    ) -> Result<Started, String> {
        self.user_enters(from, channel)?;
        let rec = self
            .messages
            .get(&(channel.0, message.0))
            .filter(|m| !m.deleted && m.bot.is_some())
            .ok_or_else(|| format!("no message of the bot {message} in {channel}"))?;
        let button = rec.json["components"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|row| row["components"].as_array())
            .flatten()
            .find(|c| c["type"] == json!(2) && c["custom_id"] == json!(custom_id))
            .cloned()
            .ok_or_else(|| format!("message {message} has no button {custom_id}"))?;
        if button["disabled"] == json!(true) {
            return Err(format!("button {custom_id} is disabled"));
        }
        let message_json = rec.json.clone();
        let mut data = json!({"custom_id": custom_id, "component_type": 2});
        if let Some(id) = button.get("id") {
            data["id"] = id.clone();
        }
        let mut payload = self.interaction_json(from, channel, 3, data);
        payload.2["message"] = message_json;
        Ok(self.start_interaction(from, channel, payload, Origin::Component(message.0), now))
    }
}
