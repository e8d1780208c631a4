//! `webcare serve`: start, run until SIGINT or SIGTERM, then stop in order.
//!
//! Shutdown follows lemmy's order: stop intake (the listener stops accepting), drain the work in flight up to
//! `shutdown.grace_secs`, close the database, exit 0. Every task that must finish before the process exits is
//! spawned on the [`TaskTracker`], so "drain" means waiting for exactly those.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing_subscriber::EnvFilter;
use webcare_app::alerts::{AlertNotifier, NotifierConfig};
use webcare_app::delivery::{Delivery, DeliveryConfig};
use webcare_app::intake::{IntakeConfig, Pipeline};
use webcare_config::{Config, LogFormat};

/// Sets up logging to standard error (standard output is for command results such as a new token).
pub fn init_tracing(config: &Config) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(f) if !f.is_empty() => EnvFilter::try_new(&f).context("RUST_LOG is not a valid filter")?,
        _ => EnvFilter::try_new(&config.log.level)
            .with_context(|| format!("log.level `{}` is not a valid filter", config.log.level))?,
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match config.log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

pub async fn serve(config: Config) -> anyhow::Result<()> {
    let db = crate::cli::open_db(&config).await?;
    tracing::info!(database = %db.url(), "database open");

    let listener = match tokio::net::TcpListener::bind(config.http.listen).await {
        Ok(l) => l,
        Err(e) => {
            db.close().await;
            return Err(e).with_context(|| format!("cannot listen on {} (http.listen)", config.http.listen));
        }
    };
    let addr = listener.local_addr().context("read the listening address")?;

    let alert_routes = match crate::cli::alert_routes(&config) {
        Ok(routes) => routes,
        Err(e) => {
            db.close().await;
            return Err(e);
        }
    };

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let store: Arc<dyn webcare_domain::Store> = Arc::new(db.clone());

    let hub = webcare_web::webchat::WebchatHub::default();
    let mut senders: Vec<Arc<dyn webcare_domain::Sender>> =
        vec![Arc::new(webcare_web::webchat::WebchatSender { hub: hub.clone() })];
    // The bots check their tokens first, so that a bad or revoked one stops the start with a clear error.
    let telegram = match &config.telegram.token {
        Some(token) => {
            let mut settings = webcare_telegram::TelegramSettings::new(token.expose(), &config.telegram.api_url);
            settings.webhook_url = config.telegram.webhook_url.clone();
            settings.delete_private_data = config.telegram.delete_private_data;
            settings.staff_chats = config.telegram.staff_chats.clone();
            match webcare_telegram::Telegram::connect(settings).await {
                Ok(t) => {
                    senders.push(Arc::new(t.sender()));
                    Some(t)
                }
                Err(e) => {
                    db.close().await;
                    return Err(e).context("start the Telegram bot");
                }
            }
        }
        None => None,
    };
    let wake = Arc::new(tokio::sync::Notify::new());
    let changes = store.lexicon_changes().await.context("read the lexicon changes")?;
    let classifier = Arc::new(crate::cli::classifier_with(&config, &changes)?);
    let ticketing = webcare_ticketing::Ticketing::new(store.clone(), crate::cli::ticket_policy(&config)?);
    let pipeline = Arc::new(
        Pipeline::start(store.clone(), ticketing.clone(), classifier, intake_config(addr), wake.clone())
            .await
            .context("restore the bridge's state")?,
    );
    // Channels webcare posts to by configuration, registered before the bots start so that the notices and the
    // staff desk know them: Discord announcement channels, and the webcare team's own chats (spike alerts, commands).
    let announcements = announcement_channels(store.as_ref(), &config).await?;
    let mut staff = Vec::new();
    let staff_chats = config
        .telegram
        .staff_chats
        .iter()
        .filter(|_| telegram.is_some())
        .map(|c| (webcare_domain::Platform::Telegram, c.to_string()));
    let staff_channels = config
        .discord
        .staff_channels
        .iter()
        .filter(|_| config.discord.token.is_some())
        .map(|c| (webcare_domain::Platform::Discord, c.to_string()));
    for (platform, chat) in staff_chats.chain(staff_channels) {
        let conversation = register_channel(store.as_ref(), platform, &chat, "staff")
            .await
            .context("register the staff chats (telegram.staff_chats, discord.staff_channels)")?;
        staff.push((platform, chat, conversation));
    }
    let notices = Arc::new(
        webcare_app::notices::Notices::new(store.clone(), pipeline.clone(), wake.clone(), config.notices.four_eyes)
            .with_announcements(announcements)
            .with_paid_fee(config.delivery.telegram_paid_stars_per_message),
    );
    let desk: Option<Arc<dyn webcare_domain::StaffDesk>> = if staff.is_empty() {
        None
    } else {
        let chats = staff.iter().map(|(_, _, c)| *c).collect();
        let staff_alerts = webcare_app::alerts::StaffAlerts::new(store.clone(), chats, wake.clone());
        let shutdown = shutdown.clone();
        tracker.spawn(async move { staff_alerts.run(shutdown).await });
        Some(Arc::new(
            webcare_app::staff::Desk::new(store.clone(), ticketing.clone(), notices.clone(), wake.clone(), staff)
                .with_lexicon(pipeline.clone()),
        ))
    };
    let telegram = telegram.map(|t| match &desk {
        Some(desk) => t.with_staff_desk(desk.clone()),
        None => t,
    });
    if let Some(token) = &config.discord.token {
        let settings = webcare_discord::DiscordSettings {
            token: token.expose().to_owned(),
            api_url: config.discord.api_url.clone(),
            support_channels: config.discord.support_channels.clone(),
            announcement_channels: config.discord.announcement_channels.clone(),
            delete_private_data: config.discord.delete_private_data,
            staff_channels: config.discord.staff_channels.clone(),
            staff_desk: desk.clone(),
            shards: config.discord.shards,
            shard_span: config.discord.shard_span(),
        };
        let (discord, gateway) = match webcare_discord::start(settings, pipeline.clone(), shutdown.clone()).await {
            Ok(started) => started,
            Err(e) => {
                db.close().await;
                return Err(e).context("start the Discord bot");
            }
        };
        senders.push(Arc::new(discord));
        tracker.spawn(async move {
            let _ = gateway.await;
        });
    }
    let delivery =
        Arc::new(Delivery::new(store.clone(), senders, delivery_config(&config.delivery)).with_waker(wake.clone()));
    {
        let delivery = delivery.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move { delivery.run(shutdown).await });
    }
    {
        // Spike alerts to the webhook of their service, read back from the database; without webhooks every alert
        // is marked as for the console only.
        if alert_routes.is_empty() {
            tracing::info!("no alert webhooks configured (alerts.webhooks): spike alerts go to the console only");
        } else {
            tracing::info!(webhooks = ?alert_routes, "spike alerts are posted to webhooks");
        }
        let notifier = AlertNotifier::new(store.clone(), alert_routes, notifier_config(&config.alerts));
        let shutdown = shutdown.clone();
        tracker.spawn(async move { notifier.run(shutdown).await });
    }
    {
        // The clocks: customers waiting in a cluster that an active notice covers get the notice (for a notice
        // published on another instance), clusters whose grace period ended become tickets even when nobody
        // writes, and solved tickets close after their time.
        let pipeline = pipeline.clone();
        let ticketing = ticketing.clone();
        let notices = notices.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(30));
            let mut soon = tokio::time::interval(Duration::from_secs(2));
            soon.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    // A notice that is new or changed since the last pass (published on another instance, or from the
                    // command line) takes the customers waiting in the clusters it covers in within seconds.
                    _ = soon.tick() => {
                        if let Err(e) = notices.adopt_new(chrono::Utc::now()).await {
                            tracing::warn!(error = %e, "adopting clusters into new notices failed");
                        }
                    }
                    _ = every.tick() => {
                        if let Err(e) = notices.adopt_waiting(chrono::Utc::now()).await {
                            tracing::warn!(error = %e, "adopting clusters into notices failed");
                        }
                        if let Err(e) = pipeline.tick(chrono::Utc::now()).await {
                            tracing::warn!(error = %e, "bridge tick failed");
                        }
                        if let Err(e) = ticketing.close_solved(chrono::Utc::now()).await {
                            tracing::warn!(error = %e, "closing solved tickets failed");
                        }
                    }
                }
            }
        });
    }
    let state = webcare_web::AppState {
        store: store.clone(),
        intake: pipeline.clone(),
        ticketing: ticketing.clone(),
        notices,
        webchat: hub,
        shutdown: shutdown.clone(),
    };
    let console = webcare_web::console::ConsoleConfig {
        secure_cookies: config.http.secure_cookies,
        trust_forwarded_for: config.http.trust_forwarded_for,
        max_body: config.http.max_body_bytes,
        webchat_sessions_per_minute: config.http.webchat_sessions_per_minute,
        webchat_messages_per_minute: config.http.webchat_messages_per_minute,
        ..Default::default()
    };
    let mut router = webcare_web::router_with(state, console);
    if let Some(t) = telegram {
        if config.telegram.webhook_url.is_some() {
            let running = t.start(pipeline.clone(), shutdown.clone()).await.context("start the Telegram bot")?;
            if let Some(hook) = running.webhook {
                router = router.merge(hook);
            }
            tracker.spawn(async move {
                let _ = running.task.await;
            });
        } else {
            // Only one process may poll a bot: the one holding the lease. Others send, and take over polling
            // within one lease period when the holder dies.
            let holder = format!("webcare-{}-{:08x}", std::process::id(), rand::random::<u32>());
            tracker.spawn(poll_telegram_under_lease(t, store.clone(), pipeline.clone(), shutdown.clone(), holder));
        }
    }
    // The handlers are in place before anyone can know the address: a signal sent as soon as the line below is
    // read stops webcare in order instead of killing it.
    let mut signals = StopSignals::install()?;
    let hangups =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).context("install the SIGHUP handler")?;
    let seen = store
        .reload_generation(webcare_app::intake::RELOAD_BRIDGE_DATA)
        .await
        .context("read the latest reload request")?;
    tracker.spawn(reload_bridge_data(hangups, seen, config.clone(), store.clone(), pipeline.clone(), shutdown.clone()));
    let http_shutdown = shutdown.clone();
    let mut http = tokio::spawn(async move { webcare_web::serve(listener, router, http_shutdown).await });
    tracing::info!(%addr, "webcare listening on http://{addr}/");
    if config.telegram.token.is_none() && config.discord.token.is_none() {
        tracing::info!("no bot token configured: customers reach webcare through the web chat at /chat");
    }

    tokio::select! {
        signal = signals.recv() => tracing::info!(signal, "stopping: no new work is taken"),
        result = &mut http => {
            db.close().await;
            return match result {
                Ok(Ok(())) => Err(anyhow::anyhow!("the HTTP server stopped unexpectedly")),
                Ok(Err(e)) => Err(e).context("the HTTP server failed"),
                Err(e) => Err(e).context("the HTTP server task failed"),
            };
        }
    }
    shutdown.cancel();
    tracker.close();
    let grace = Duration::from_secs(config.shutdown.grace_secs);
    let drained = async {
        let _ = http.await;
        tracker.wait().await;
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(?grace, "work still in flight after the grace period; exiting anyway");
    }
    if let Err(e) = pipeline.snapshot().await {
        tracing::warn!(error = %e, "could not save the bridge's state; it is rebuilt from the messages at start");
    }
    // Another instance on the database takes over deciding at once instead of after the lease runs out.
    if let Err(e) = pipeline.step_down().await {
        tracing::warn!(error = %e, "could not give up the decider's lease; another instance takes over when it ends");
    }
    // Closing waits for queries in flight; bound it too, so a hung database cannot hold the exit.
    if tokio::time::timeout(Duration::from_secs(1), db.close()).await.is_err() {
        tracing::warn!("the database did not close in time");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The intake's settings for this instance. Its name, for the decider's lease, is the host and the address it
/// listens on: unique among the instances on one database, and the same when it restarts on that address, so a
/// restarted instance decides again at once instead of waiting for its old lease to run out.
fn intake_config(addr: std::net::SocketAddr) -> IntakeConfig {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    IntakeConfig { instance: format!("{host}/{addr}"), ..IntakeConfig::default() }
}

/// SIGINT and SIGTERM, caught from when they are installed (a signal that comes before `recv` is kept for it).
struct StopSignals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(StopSignals {
            int: signal(SignalKind::interrupt()).context("install the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("install the SIGTERM handler")?,
        })
    }

    /// Resolves with the signal's name on SIGINT or SIGTERM.
    async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}

/// How often an instance looks for a new reload request.
const RELOAD_POLL: Duration = Duration::from_secs(2);

/// On SIGHUP, or when an admin asked every instance through the database (`webcare reload`, the console's
/// Messages page, a lexicon change from the console, the API or `webcare lexicon`: a generation above `seen`),
/// reads the bridge's data files again (`bridge.data_dir`, else the shipped ones) with the admins' lexicon changes
/// from the database over them, so that an admin who changed a lexicon, pattern or region file, and checked it with
/// `webcare replay` or `webcare message show`, applies it without a restart. Files that do not load are named in the
/// log, and the running data stays.
async fn reload_bridge_data(
    mut hangups: tokio::signal::unix::Signal,
    mut seen: i64,
    config: Config,
    store: Arc<dyn webcare_domain::Store>,
    pipeline: Arc<Pipeline>,
    shutdown: CancellationToken,
) {
    let source = config
        .bridge
        .data_dir
        .as_ref()
        .map_or("the shipped files (bridge.data_dir is not set)".to_owned(), |d| d.display().to_string());
    let mut poll = tokio::time::interval(RELOAD_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let why = tokio::select! {
            _ = shutdown.cancelled() => return,
            got = hangups.recv() => match got {
                Some(()) => "SIGHUP".to_owned(),
                None => return,
            },
            _ = poll.tick() => match store.reload_generation(webcare_app::intake::RELOAD_BRIDGE_DATA).await {
                Ok(generation) if generation > seen => {
                    seen = generation;
                    format!("reload request {generation}")
                }
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "could not look for a reload request; trying again");
                    continue;
                }
            },
        };
        let changes = match store.lexicon_changes().await {
            Ok(changes) => changes,
            Err(e) => {
                tracing::error!(error = %e, %why, "bridge data not reloaded: the lexicon changes could not be read; the running data stays");
                continue;
            }
        };
        let config = config.clone();
        match tokio::task::spawn_blocking(move || crate::cli::classifier_with(&config, &changes)).await {
            Ok(Ok(classifier)) => {
                pipeline.reload_classifier(Arc::new(classifier)).await;
                tracing::info!(data = %source, %why, "bridge data reloaded: later messages are classified with it");
            }
            Ok(Err(e)) => {
                tracing::error!(error = format!("{e:#}"), %why, "bridge data not reloaded; the running data stays");
            }
            Err(e) => tracing::error!(error = %e, %why, "bridge data not reloaded; the running data stays"),
        }
    }
}

/// The lease that says which instance polls Telegram.
const POLL_LEASE: &str = "telegram-poller";
const POLL_LEASE_TTL: Duration = Duration::from_secs(10);
const POLL_LEASE_RENEW: Duration = Duration::from_secs(3);

/// Polls Telegram while this process holds the polling lease, renewing it; waits for the lease otherwise.
async fn poll_telegram_under_lease(
    telegram: webcare_telegram::Telegram,
    store: Arc<dyn webcare_domain::Store>,
    intake: Arc<Pipeline>,
    shutdown: CancellationToken,
    holder: String,
) {
    let lease = |now: chrono::DateTime<chrono::Utc>| {
        (now, now + chrono::Duration::from_std(POLL_LEASE_TTL).expect("a short duration"))
    };
    while !shutdown.is_cancelled() {
        let (now, until) = lease(chrono::Utc::now());
        match store.acquire_lease(POLL_LEASE, &holder, now, until).await {
            Ok(true) => {
                let stop = shutdown.child_token();
                let running = match telegram.clone().start(intake.clone(), stop.clone()).await {
                    Ok(running) => running,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not start polling Telegram; trying again");
                        let _ = store.release_lease(POLL_LEASE, &holder).await;
                        wait(&shutdown, POLL_LEASE_RENEW).await;
                        continue;
                    }
                };
                tracing::info!(%holder, "this instance polls Telegram");
                loop {
                    if wait(&shutdown, POLL_LEASE_RENEW).await {
                        break;
                    }
                    let (now, until) = lease(chrono::Utc::now());
                    match store.acquire_lease(POLL_LEASE, &holder, now, until).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!("another instance took the Telegram polling lease; stopping polling");
                            break;
                        }
                        Err(e) => {
                            // Without a renewal the lease runs out and another instance may start polling: stop first.
                            tracing::warn!(error = %e, "could not renew the Telegram polling lease; stopping polling");
                            break;
                        }
                    }
                }
                stop.cancel();
                let _ = running.task.await;
                if shutdown.is_cancelled() {
                    let _ = store.release_lease(POLL_LEASE, &holder).await;
                }
            }
            Ok(false) => {
                wait(&shutdown, POLL_LEASE_RENEW).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not take the Telegram polling lease; trying again");
                wait(&shutdown, POLL_LEASE_RENEW).await;
            }
        }
    }
}

/// Waits `d`, or less when webcare stops; true when it stops.
async fn wait(shutdown: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// The delivery engine's settings from the `[delivery]` section.
pub fn delivery_config(c: &webcare_config::Delivery) -> DeliveryConfig {
    use webcare_app::delivery::PlatformLimits;
    let k = c.rate_scale;
    let mut config = DeliveryConfig {
        lease: Duration::from_secs(c.lease_secs),
        batch: c.batch,
        concurrency: c.batch as usize,
        headroom: c.headroom,
        ..DeliveryConfig::default()
    };
    config.limits.insert(
        "telegram",
        PlatformLimits::telegram().with_rates(
            c.telegram_per_second * k,
            c.telegram_chat_per_second * k,
            c.telegram_group_per_minute * k,
            Some(c.telegram_paid_per_second * k),
        ),
    );
    config.limits.insert(
        "discord",
        PlatformLimits::discord().with_rates(
            c.discord_per_second * k,
            c.discord_channel_per_second * k,
            c.discord_channel_per_second * 60.0 * k,
            None,
        ),
    );
    config
}

/// The alert notifier's settings from the `[alerts]` section. A claim outlasts two posts that time out, so another
/// instance never posts an alert whose first post is still waiting for its answer.
pub fn notifier_config(c: &webcare_config::Alerts) -> NotifierConfig {
    let timeout = Duration::from_secs(c.timeout_secs);
    NotifierConfig {
        lease: timeout * 2 + Duration::from_secs(10),
        give_up_after: Duration::from_secs(c.give_up_after_secs),
        ..NotifierConfig::default()
    }
}

/// A channel webcare posts to by configuration (an announcement channel, a staff chat), as a conversation of its own.
/// The Discord announcement channels that get every notice version, registered as conversations; none while the
/// Discord bot is not configured.
pub(crate) async fn announcement_channels(
    store: &dyn webcare_domain::Store,
    config: &Config,
) -> anyhow::Result<Vec<webcare_domain::ConversationId>> {
    let mut announcements = Vec::new();
    if config.discord.token.is_some() {
        for channel in &config.discord.announcement_channels {
            let conversation = register_channel(store, webcare_domain::Platform::Discord, channel, "announcements")
                .await
                .context("register the Discord announcement channels")?;
            announcements.push(conversation);
        }
    }
    Ok(announcements)
}

async fn register_channel(
    store: &dyn webcare_domain::Store,
    platform: webcare_domain::Platform,
    chat: &(impl ToString + ?Sized),
    title: &str,
) -> webcare_domain::StoreResult<webcare_domain::ConversationId> {
    let new = webcare_domain::NewConversation {
        platform,
        platform_chat_id: chat.to_string(),
        kind: webcare_domain::ConversationKind::Public,
        title: Some(title.to_owned()),
    };
    Ok(store.upsert_conversation(new, chrono::Utc::now()).await?.id)
}
