//! The real serenity 0.12 client against the fake, as webcare's adapter will run it: REST through
//! `HttpBuilder::proxy` with serenity's own rate limiter off, the gateway URL from the fake's `GET /gateway`.
//! A handler answers messages and a slash command; a dropped gateway connection is resumed without losing a
//! message.

use std::sync::Arc;

use serenity::all::{
    ClientBuilder, Context, CreateAllowedMentions, CreateInteractionResponse, CreateInteractionResponseMessage,
    CreateMessage, EventHandler, GatewayIntents, HttpBuilder, Interaction, Message, Ready,
};
use serenity::async_trait;
use webcare_fake_discord::{FakeDiscord, NewGuild, NewUser, SlashCommand};

use crate::common::{WAIT, ok, unlimited, webcare_commands};

struct Echo;

#[async_trait]
impl EventHandler for Echo {
    async fn message(&self, ctx: Context, msg: Message) {
        if msg.author.bot {
            return;
        }
        let reply = CreateMessage::new()
            .content(format!("echo: {}", msg.content))
            .allowed_mentions(CreateAllowedMentions::new());
        msg.channel_id.send_message(&ctx.http, reply).await.expect("send through the fake");
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        if let Interaction::Command(cmd) = interaction {
            let answer = CreateInteractionResponse::Message(
                CreateInteractionResponseMessage::new().content(format!("/{} ok", cmd.data.name)),
            );
            cmd.create_response(&ctx.http, answer).await.expect("interaction callback");
        }
    }

    async fn ready(&self, _ctx: Context, _ready: Ready) {}
}

async fn start_serenity(dc: &FakeDiscord) -> Arc<serenity::gateway::ShardManager> {
    let http = HttpBuilder::new(dc.token()).proxy(dc.api_url()).ratelimiter_disabled(true).build();
    let intents = GatewayIntents::GUILDS
        | GatewayIntents::GUILD_MESSAGES
        | GatewayIntents::DIRECT_MESSAGES
        | GatewayIntents::MESSAGE_CONTENT;
    let mut client = ClientBuilder::new_with_http(http, intents).event_handler(Echo).await.expect("serenity client");
    let shards = client.shard_manager.clone();
    tokio::spawn(async move {
        let _ = client.start().await;
    });
    shards
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serenity_connects_answers_and_resumes_after_a_drop() {
    let dc = unlimited().await;
    let guild = dc.create_guild(NewGuild::named("Ziggo"));
    let support = dc.create_text_channel(guild, "support");
    let alice = dc.create_user(NewUser::named("alice"));
    ok(&dc, "PUT", &format!("/applications/{}/commands", dc.application_id()), Some(webcare_commands())).await;
    let shards = start_serenity(&dc).await;
    assert!(dc.wait_until(WAIT, || dc.ready_connections() == 1).await, "serenity identified");
    let identify = dc.identifies()[0].clone();
    assert_eq!(identify.shard, Some((0, 1)));
    assert!(identify.compress, "serenity asks for payload compression in IDENTIFY");

    dc.post_text(alice, support, "storing?");
    assert!(dc.wait_until(WAIT, || dc.visible_bot_messages(support).len() == 1).await);
    let echo = &dc.visible_bot_messages(support)[0];
    assert_eq!(echo.content, "echo: storing?");
    assert!(echo.pings.none());

    dc.dm_bot(alice, "rekening");
    let dm = dc.existing_dm_channel(alice).unwrap();
    assert!(dc.wait_until(WAIT, || dc.visible_bot_messages(dm).len() == 1).await);

    let run = dc.run_command(alice, support, SlashCommand::new("status"));
    let answered =
        dc.wait_until(WAIT, || dc.interaction(run.interaction_id).is_some_and(|i| !i.callbacks.is_empty())).await;
    assert!(answered, "{:?} {:?}", dc.interaction(run.interaction_id), dc.stats().requests);
    assert_eq!(dc.interaction(run.interaction_id).unwrap().response_type(), Some(4));

    // A drop without a close frame: serenity resumes, and what was posted meanwhile is replayed once.
    dc.drop_gateway(None);
    dc.post_text(alice, support, "tijdens de storing");
    assert!(dc.wait_until(WAIT, || dc.stats().resumes == 1).await, "serenity resumed");
    assert!(dc.wait_until(WAIT, || dc.visible_bot_messages(support).len() == 3).await);
    // 4009: the session is gone, serenity identifies again.
    dc.drop_gateway(Some(4009));
    // serenity's shard queue waits 5 s between two IDENTIFYs of a process, so this takes a while.
    let reidentified = dc.wait_until(WAIT * 3, || dc.stats().identifies == 2 && dc.ready_connections() == 1).await;
    assert!(reidentified, "{:?} open {} ready {}", dc.stats(), dc.open_connections(), dc.ready_connections());
    dc.post_text(alice, support, "weer online");
    assert!(dc.wait_until(WAIT, || dc.visible_bot_messages(support).len() == 4).await);
    assert!(dc.duplicate_contents().is_empty(), "{:?}", dc.duplicate_contents());
    shards.shutdown_all().await;
}
