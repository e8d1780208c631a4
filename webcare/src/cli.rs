//! Command-line parsing and the small commands; `serve` lives in its own module.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use webcare_config::{CONFIG_ENV, Config, LogFormat};
use webcare_storage::{Db, OpenOptions};

#[derive(Debug, Parser)]
#[command(
    name = "webcare",
    version,
    about = "Social customer care: bots, outage broadcasts and tickets in one service"
)]
pub struct Cli {
    /// The configuration file (TOML). Defaults to $WEBCARE_CONFIG, else built-in defaults.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log as human-readable text or as JSON lines; overrides `log.format`.
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run everything that is configured: HTTP (console, web chat, API, health) and the bots whose tokens are set.
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the configuration: exit 0 when valid, 2 with every error otherwise.
    CheckConfig,
    /// Print the effective configuration as TOML, secrets masked.
    PrintConfig,
    /// Manage agents: add, list, role, deactivate, activate, password, token.
    Agent {
        #[command(subcommand)]
        command: crate::admin::AgentCommand,
    },
    /// Notices from a terminal (admins): list, show, create, update, approve.
    Notice {
        #[command(subcommand)]
        command: crate::admin::NoticeCommand,
    },
    /// Spike alerts: list them, and publish a notice from one (admins).
    Alert {
        #[command(subcommand)]
        command: crate::admin::AlertCommand,
    },
    /// Stored messages and why each was answered as it was: list them by what was done, show one with its
    /// reasons (admins).
    Message {
        #[command(subcommand)]
        command: crate::admin::MessageCommand,
    },
    /// The lexicons as `serve` counts them, and admins' changes to them (kept in the database, applied by every
    /// instance): list, add, remove, undo.
    Lexicon {
        #[command(subcommand)]
        command: crate::admin::LexiconCommand,
    },
    /// Ask every running instance on the database to read the bridge's data files again (as SIGHUP does for
    /// one), after checking that they load here.
    Reload,
    /// Run the bridge over past messages (CSV or JSONL) without sending anything: one JSON line per message.
    Replay {
        file: PathBuf,
        /// Notices active during the replay (JSON list or TOML `[[notice]]`).
        #[arg(long, value_name = "FILE")]
        notices: Option<PathBuf>,
        /// Where to write the JSON lines; standard output when not given.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        #[command(flatten)]
        clustering: Clustering,
        /// Read with the admins' lexicon and region changes kept in the configured database over the data files,
        /// as `serve` does (the data files alone otherwise).
        #[arg(long)]
        with_changes: bool,
    },
    /// Replay a labelled file and print quality figures (precision, recall, F1; private data; clustering).
    Eval {
        file: PathBuf,
        #[command(flatten)]
        clustering: Clustering,
        /// Read with the admins' lexicon and region changes kept in the configured database, as `serve` does.
        #[arg(long)]
        with_changes: bool,
    },
    /// The reports as text (or JSON with `--json`, as `GET /api/v1/reports` gives them): messages per day and
    /// category, per region, spike alerts, tickets and first-response times.
    Report {
        /// How many days, today included (the team's days, `tickets.sla.timezone`), 1 to 366.
        #[arg(long, default_value_t = 30,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(webcare_app::reports::MAX_DAYS)))]
        days: u32,
        #[arg(long)]
        json: bool,
    },
    /// Broadcasts of notices.
    Broadcast {
        #[command(subcommand)]
        command: BroadcastCommand,
    },
    /// Benchmarks; each prints its figures and, as its last line, one JSON object with them.
    Bench {
        #[command(subcommand)]
        bench: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
enum BroadcastCommand {
    /// Sent, failed, pending, rate and ETA of a notice's current version.
    Status {
        /// The notice id.
        notice: i64,
        /// Keep showing progress (a bar on a terminal) until nothing is pending.
        #[arg(long)]
        follow: bool,
    },
}

/// How a replay groups outage questions; the defaults are the live ones.
#[derive(Debug, Clone, clap::Args)]
pub struct Clustering {
    /// The sliding window of a cluster (`30m`, `3h`): a sampled file, with far fewer messages per outage than the
    /// live stream, may need a longer one than the live 30 minutes.
    #[arg(long, value_name = "DURATION")]
    pub window: Option<String>,
    /// Group only questions that name a region.
    #[arg(long)]
    pub regions_only: bool,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Classification alone, and classification plus the decision engine, on one core.
    Classify {
        /// Texts to classify (CSV with a `text` column, or JSONL); a synthetic Dutch/English corpus when not given.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// How long each measurement runs at least.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
    /// Inbound messages through the whole path (store, bridge decision, ticket or subscription, outbox row) with
    /// durable commits, and the decision latency.
    Ingest {
        /// Messages to push through.
        #[arg(long, default_value_t = 5000)]
        messages: usize,
        /// The database to measure: a new SQLite file in a temporary directory when not given; with a
        /// `postgres://` URL, a new database on that server, created for the run and dropped at the end.
        #[arg(long, value_name = "URL")]
        database: Option<String>,
        /// Messages in flight at once, as several platform adapters would deliver them.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// A notice update to N subscribers, sent by a `webcare serve` child process through the fake Telegram or
    /// Discord server with its rate limits enforced; agents answer a customer meanwhile.
    Broadcast {
        /// Subscribers to reach.
        #[arg(long, default_value_t = 10_000)]
        subscribers: usize,
        /// `telegram` or `discord`.
        #[arg(long, default_value = "telegram")]
        platform: String,
        /// How many times faster than the real platform the fake's clock and limits run (and webcare's, alike).
        #[arg(long, default_value_t = 20.0)]
        scale: f64,
        /// The share of the limit webcare aims for (`delivery.headroom`).
        #[arg(long, default_value_t = 0.97)]
        headroom: f64,
        /// The database: a new SQLite file in a temporary directory when not given, or a `postgres://` URL of an
        /// empty database.
        #[arg(long, value_name = "URL")]
        database: Option<String>,
    },
}

/// Why a command failed: a bad configuration (exit 2) or anything else (exit 1).
enum Failure {
    Config(webcare_config::ConfigErrors),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

pub async fn run(cli: Cli) -> ExitCode {
    match dispatch(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(errors)) => {
            for e in &errors.0 {
                eprintln!("webcare: invalid configuration: {e}");
            }
            ExitCode::from(2)
        }
        Err(Failure::Other(e)) => {
            // One line: the context chain joined, as operators read it in a terminal or a unit's log.
            eprintln!("webcare: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> Result<(), Failure> {
    let path = cli.config.clone().or_else(|| std::env::var_os(CONFIG_ENV).map(PathBuf::from));
    let mut config = Config::load(path.as_deref(), std::env::vars()).map_err(Failure::Config)?;
    ticket_policy_checked(&config, path.as_deref()).map_err(Failure::Config)?;
    alert_routes_checked(&config, path.as_deref()).map_err(Failure::Config)?;
    if let Some(format) = cli.log_format {
        config.log.format = match format {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    match cli.command {
        Command::CheckConfig => {
            // The bridge's data files are part of the configuration: a broken lexicon is found here, before a start
            // or a SIGHUP would find it.
            bridge_data_checked(&config, path.as_deref()).map_err(Failure::Config)?;
            let source = path.map_or("built-in defaults".to_owned(), |p| p.display().to_string());
            println!("configuration is valid ({source})");
            Ok(())
        }
        Command::PrintConfig => {
            print!("{}", config.to_toml());
            Ok(())
        }
        Command::Migrate => {
            crate::serve::init_tracing(&config)?;
            let db = open_db(&config).await?;
            println!("migrations applied to {}", db.url());
            db.close().await;
            Ok(())
        }
        Command::Serve => {
            crate::serve::init_tracing(&config)?;
            crate::serve::serve(config).await.map_err(Failure::Other)
        }
        Command::Agent { command } => {
            crate::serve::init_tracing(&config)?;
            crate::admin::agent(&config, command).await.map_err(Failure::Other)
        }
        Command::Notice { command } => {
            crate::serve::init_tracing(&config)?;
            crate::admin::notice(&config, command).await.map_err(Failure::Other)
        }
        Command::Alert { command } => {
            crate::serve::init_tracing(&config)?;
            crate::admin::alert(&config, command).await.map_err(Failure::Other)
        }
        Command::Message { command } => {
            crate::serve::init_tracing(&config)?;
            crate::admin::message(&config, command).await.map_err(Failure::Other)
        }
        Command::Lexicon { command } => {
            crate::serve::init_tracing(&config)?;
            crate::admin::lexicon(&config, command).await.map_err(Failure::Other)
        }
        Command::Reload => {
            crate::serve::init_tracing(&config)?;
            crate::admin::reload(&config).await.map_err(Failure::Other)
        }
        Command::Replay { file, notices, out, clustering, with_changes } => {
            let changes = changes_if(&config, with_changes).await?;
            crate::replay::replay(&config, &file, notices.as_deref(), out.as_deref(), &clustering, &changes)
                .map_err(Failure::Other)
        }
        Command::Eval { file, clustering, with_changes } => {
            let changes = changes_if(&config, with_changes).await?;
            crate::replay::eval(&config, &file, &clustering, &changes).map_err(Failure::Other)
        }
        Command::Report { days, json } => {
            crate::serve::init_tracing(&config)?;
            crate::admin::report(&config, days, json).await.map_err(Failure::Other)
        }
        Command::Broadcast { command: BroadcastCommand::Status { notice, follow } } => {
            crate::serve::init_tracing(&config)?;
            broadcast_status(&config, notice, follow).await.map_err(Failure::Other)
        }
        Command::Bench { bench: BenchCommand::Classify { file, seconds } } => {
            crate::replay::bench_classify(&config, file.as_deref(), seconds).map_err(Failure::Other)
        }
        Command::Bench { bench: BenchCommand::Ingest { messages, database, concurrency } } => {
            crate::bench::ingest(&config, messages, database, concurrency).await.map_err(Failure::Other)
        }
        Command::Bench { bench: BenchCommand::Broadcast { subscribers, platform, scale, headroom, database } } => {
            crate::bench_broadcast::run(subscribers, &platform, scale, headroom, database).await.map_err(Failure::Other)
        }
    }
}

/// The `[tickets]` section as the ticket rules; `check-config` and every start validate it.
pub fn ticket_policy(config: &Config) -> anyhow::Result<webcare_ticketing::TicketPolicy> {
    ticket_policy_checked(config, None).map_err(|e| anyhow::anyhow!("{e}"))
}

fn ticket_policy_checked(
    config: &Config,
    file: Option<&std::path::Path>,
) -> Result<webcare_ticketing::TicketPolicy, webcare_config::ConfigErrors> {
    use webcare_config::{ConfigError, ConfigErrors, Origin};
    let origin = || file.map_or(Origin::Defaults, |p| Origin::File(p.to_path_buf()));
    let value = toml::Value::Table(config.tickets.clone());
    let policy: webcare_ticketing::TicketPolicy = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." { "tickets".to_owned() } else { format!("tickets.{path}") };
        ConfigErrors(vec![ConfigError { origin: origin(), key, message: e.inner().to_string() }])
    })?;
    let problems: Vec<ConfigError> = policy
        .problems()
        .into_iter()
        .map(|problem| {
            let (key, message) = problem.split_once(": ").unwrap_or(("", problem.as_str()));
            ConfigError { origin: origin(), key: format!("tickets.{key}"), message: message.to_owned() }
        })
        .collect();
    if problems.is_empty() { Ok(policy) } else { Err(ConfigErrors(problems)) }
}

/// The `[alerts.webhooks]` as the webhooks spike alerts are posted to; `check-config` and every start validate
/// them, beyond the configuration's own check (a URL that does not parse, such as one with a port out of range).
pub fn alert_routes(config: &Config) -> anyhow::Result<webcare_app::alerts::AlertRoutes> {
    alert_routes_checked(config, None).map_err(|e| anyhow::anyhow!("{e}"))
}

fn alert_routes_checked(
    config: &Config,
    file: Option<&std::path::Path>,
) -> Result<webcare_app::alerts::AlertRoutes, webcare_config::ConfigErrors> {
    use std::sync::Arc;
    use webcare_config::{ConfigError, ConfigErrors};
    let mut routes = webcare_app::alerts::AlertRoutes::new();
    let hooks = config.alerts.webhooks.all();
    if hooks.is_empty() {
        return Ok(routes);
    }
    let origin = |key: &str| origin_of(key, file);
    let client = webcare_webhook::client(Duration::from_secs(config.alerts.timeout_secs)).map_err(|e| {
        ConfigErrors(vec![ConfigError { origin: origin("alerts"), key: "alerts".into(), message: e.to_string() }])
    })?;
    let mut errors = Vec::new();
    for (name, url) in hooks {
        let key = format!("alerts.webhooks.{name}");
        let sink = match webcare_webhook::WebhookSink::new(client.clone(), url.expose(), url.masked()) {
            Ok(sink) => Arc::new(sink),
            Err(e) => {
                errors.push(ConfigError { origin: origin(&key), message: e.to_string(), key });
                continue;
            }
        };
        routes = match name.parse::<webcare_domain::Service>() {
            Ok(service) => routes.with(service, sink),
            Err(_) => routes.with_default(sink),
        };
    }
    if errors.is_empty() { Ok(routes) } else { Err(ConfigErrors(errors)) }
}

/// Where a key's value came from: a value from the environment is blamed on its variable, as `Config::load` does.
fn origin_of(key: &str, file: Option<&std::path::Path>) -> webcare_config::Origin {
    use webcare_config::Origin;
    let var = format!("{}{}", webcare_config::ENV_PREFIX, key.to_ascii_uppercase().replace('.', "__"));
    match (std::env::var_os(&var), file) {
        (Some(_), _) => Origin::Env(var),
        (None, Some(p)) => Origin::File(p.to_path_buf()),
        (None, None) => Origin::Defaults,
    }
}

/// Loads `bridge.data_dir`'s files as `serve` would; a file that does not load is an error of that key.
fn bridge_data_checked(config: &Config, file: Option<&std::path::Path>) -> Result<(), webcare_config::ConfigErrors> {
    match classifier(config) {
        Ok(_) => Ok(()),
        Err(e) => Err(webcare_config::ConfigErrors(vec![webcare_config::ConfigError {
            origin: origin_of("bridge.data_dir", file),
            key: "bridge.data_dir".into(),
            message: format!("{:#}", e.root_cause()),
        }])),
    }
}

/// The classifier with the shipped data, or with `bridge.data_dir`'s files in place of the shipped ones.
/// The admins' lexicon and region changes from the configured database where `wanted`, none otherwise.
async fn changes_if(config: &Config, wanted: bool) -> Result<Vec<webcare_domain::LexiconChange>, Failure> {
    if !wanted {
        return Ok(Vec::new());
    }
    let changes = crate::admin::lexicon_changes(config).await.map_err(Failure::Other)?;
    eprintln!("with {} lexicon and region changes from the database over the data files", changes.len());
    Ok(changes)
}

pub fn classifier(config: &Config) -> anyhow::Result<webcare_bridge::Classifier> {
    classifier_with(config, &[])
}

/// The classifier `serve` runs: the data files, as [`classifier`] reads them, with the admins' lexicon changes
/// (kept in the database) over them (`webcare_app::lexicon::classifier`).
pub fn classifier_with(
    config: &Config,
    changes: &[webcare_domain::LexiconChange],
) -> anyhow::Result<webcare_bridge::Classifier> {
    let (data, dir) = match &config.bridge.data_dir {
        Some(dir) => (webcare_bridge::ClassifierData::from_dir(dir), dir.clone()),
        None => (webcare_bridge::ClassifierData::embedded(), std::path::PathBuf::from("<embedded>")),
    };
    data.and_then(|mut data| {
        if !config.bridge.countries.is_empty() {
            data.pii.postcode_countries = config.bridge.countries.clone();
        }
        webcare_app::lexicon::classifier(&data, &dir, changes)
    })
    .with_context(|| format!("load the bridge's data files from {} (bridge.data_dir)", dir.display()))
}

/// Opens the configured database, retrying an unreachable server for `database.connect_retry_secs`, and migrates.
pub async fn open_db(config: &Config) -> anyhow::Result<Db> {
    let options = OpenOptions {
        max_connections: config.database.max_connections,
        connect_retry: Duration::from_secs(config.database.connect_retry_secs),
        migrate: true,
    };
    Ok(Db::open(&config.database.url, &options).await?)
}

async fn broadcast_status(config: &Config, notice: i64, follow: bool) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    let db = open_db(config).await?;
    let tty = std::io::stdout().is_terminal();
    let result = async {
        loop {
            let fee = config.delivery.telegram_paid_stars_per_message;
            let p = webcare_app::notices::progress(&db, webcare_domain::NoticeId(notice), fee)
                .await
                .with_context(|| format!("notice {notice}"))?;
            let done = p.sent + p.failed;
            let total = (done + p.pending).max(1);
            let eta = p.eta_s.map_or("unknown".to_owned(), |s| format!("{s:.0} s"));
            let line = format!(
                "notice {notice} v{}: {} subscribers, sent {}, failed {}, pending {}, {:.1}/s, ETA {eta}",
                p.version, p.subscribers, p.sent, p.failed, p.pending, p.rate_per_s
            );
            if follow && tty {
                let filled = (done * 30 / total) as usize;
                print!("\r[{}{}] {line}   ", "#".repeat(filled), " ".repeat(30 - filled.min(30)));
                std::io::Write::flush(&mut std::io::stdout()).ok();
            } else {
                println!("{line}");
            }
            if !follow || p.pending == 0 {
                if follow && tty {
                    println!();
                }
                println!("{}", serde_json::to_string(&p)?);
                return anyhow::Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    .await;
    db.close().await;
    result
}

impl From<webcare_config::ConfigErrors> for Failure {
    fn from(e: webcare_config::ConfigErrors) -> Self {
        Failure::Config(e)
    }
}
