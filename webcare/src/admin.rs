//! The admins' commands: notices, spike alerts, agents and messages (what was decided and why) from a terminal, beside a running `webcare serve` or
//! without one. They work on the database directly, through the same services as the console and the staff chats
//! (`Notices`), so roles, four-eyes approval and "one outage, one notice" hold here too; what they queue is sent
//! by the serving instances, which poll the outbox.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use webcare_app::alerts::AlertOutcome;
use webcare_app::notices::{NoticeInput, Notices};
use webcare_config::Config;
use webcare_domain::{
    Agent, AlertId, NewAgent, Notice, NoticeChange, NoticeId, NoticeState, Role, Service, Store as _, StoreError,
};
use webcare_storage::Db;

use crate::cli::open_db;

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Create an agent and print a new API token, alone on the last line (shown once, stored hashed).
    Add {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = word::<Role>)]
        role: Role,
        /// Read a console password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Every agent: id, name, role, whether active, and the chat accounts linked for the staff chats.
    List,
    /// Give an agent another role (`agent` or `admin`); their console sessions end.
    Role {
        name: String,
        #[arg(value_parser = word::<Role>)]
        role: Role,
    },
    /// Stop an agent: no login, no API token, no staff-chat command works for them; their tickets stay theirs.
    Deactivate { name: String },
    /// Let a deactivated agent work again.
    Activate { name: String },
    /// Set an agent's console password from the first line of standard input; their console sessions end.
    Password {
        name: String,
        /// Read the password from standard input (required: a password never goes on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Print a new API token for an agent, alone on the last line (shown once, stored hashed).
    Token { name: String },
}

#[derive(Debug, Subcommand)]
pub enum NoticeCommand {
    /// The notices not yet resolved (all with `--all`): id, state, scope, version, and which await approval.
    List {
        #[arg(long)]
        all: bool,
    },
    /// One notice: its texts, scope, versions (who wrote and approved each) and the current version's broadcast.
    Show { id: i64 },
    /// Create a notice; when active it answers every matching question at once, and the customers already waiting in
    /// the clusters it covers get it.
    Create {
        /// The admin who writes it (their name).
        #[arg(long = "as", value_name = "ADMIN")]
        author: String,
        /// What admins and the console call it ("Storing internet Utrecht"); customers get the text.
        #[arg(long)]
        title: String,
        /// The main text (the operator's language, usually Dutch).
        #[arg(long)]
        text: String,
        /// The text in another language, for those who asked in it: `--translation en="We are working on it."`.
        #[arg(long = "translation", value_name = "LANG=TEXT", value_parser = translation)]
        translations: Vec<(String, String)>,
        /// A service it covers (internet, tv, mobile, landline); repeat for more; none means every service.
        #[arg(long = "service", value_name = "SERVICE", value_parser = word::<Service>)]
        services: Vec<Service>,
        /// A region it covers (a place, municipality, province or postcode); repeat for more; none is nationwide.
        #[arg(long = "region", value_name = "REGION")]
        regions: Vec<String>,
        /// investigating, identified, monitoring or resolved.
        #[arg(long, value_parser = word::<NoticeState>, default_value = "investigating")]
        state: NoticeState,
        /// Keep it as a draft that customers do not see until it is published.
        #[arg(long)]
        draft: bool,
        /// Send it on Telegram as a paid broadcast (up to 1,000 messages/s, 0.1 Star per message).
        #[arg(long)]
        paid_broadcast: bool,
    },
    /// A new version of a notice: each subscriber gets it once, in their language; `resolved` sends the final message.
    Update {
        id: i64,
        #[arg(long = "as", value_name = "ADMIN")]
        author: String,
        #[arg(long, value_parser = word::<NoticeState>)]
        state: Option<NoticeState>,
        /// A new main text; without `--translation` the texts in other languages are dropped with the old text.
        #[arg(long)]
        text: Option<String>,
        #[arg(long = "translation", value_name = "LANG=TEXT", value_parser = translation)]
        translations: Vec<(String, String)>,
        /// The services it covers from now on (repeat); `--all-services` for every service.
        #[arg(long = "service", value_name = "SERVICE", value_parser = word::<Service>, conflicts_with = "all_services")]
        services: Vec<Service>,
        /// It covers every service from now on.
        #[arg(long)]
        all_services: bool,
        /// The regions it covers from now on (repeat); `--nationwide` for everywhere.
        #[arg(long = "region", value_name = "REGION", conflicts_with = "nationwide")]
        regions: Vec<String>,
        /// It covers the whole country from now on.
        #[arg(long)]
        nationwide: bool,
        /// Publish a draft (not under four eyes: then another admin runs `notice approve`).
        #[arg(long)]
        publish: bool,
    },
    /// Publish a notice that awaits approval; under `notices.four_eyes` by another admin than its author.
    Approve {
        id: i64,
        #[arg(long = "as", value_name = "ADMIN")]
        approver: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AlertCommand {
    /// Spike alerts, newest first, with what became of each: still waiting, answered by a notice, or expired.
    List {
        /// How far back, in hours.
        #[arg(long, default_value_t = 24)]
        hours: u32,
    },
    /// Publish a notice from a spike alert: one broadcast reaches every customer of its cluster. Without `--text`
    /// the alert's draft is used (Dutch, with the English draft for those who asked in English).
    Publish {
        id: i64,
        #[arg(long = "as", value_name = "ADMIN")]
        author: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        text: Option<String>,
        #[arg(long = "translation", value_name = "LANG=TEXT", value_parser = translation)]
        translations: Vec<(String, String)>,
        #[arg(long, value_parser = word::<NoticeState>, default_value = "investigating")]
        state: NoticeState,
    },
}

#[derive(Debug, Subcommand)]
pub enum LexiconCommand {
    /// The groups of the lexicons as `serve` counts them (the data files with the admins' changes), and the
    /// changes; `--group NAME` lists that group's terms.
    List {
        /// nl or en.
        #[arg(long)]
        language: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
    /// Make a term count for a group (admins); every running instance applies it within seconds.
    Add(Box<TermArgs>),
    /// Take a listed term out of a group (admins); every running instance applies it within seconds.
    Remove(Box<TermArgs>),
    /// Take a change back (admins): the data files' word holds again.
    Undo {
        id: i64,
        #[arg(long = "as", value_name = "ADMIN")]
        author: String,
    },
}

/// The arguments of `webcare lexicon add` and `remove`.
#[derive(Debug, clap::Args)]
pub struct TermArgs {
    /// The admin who makes the change; not needed for `--dry-run`.
    #[arg(long = "as", value_name = "ADMIN")]
    author: Option<String>,
    /// nl or en.
    #[arg(long)]
    language: String,
    #[arg(long)]
    group: String,
    /// Words as in a data file: a final `*` for any ending, ` .. ` for up to three words between.
    term: String,
    /// Change nothing: show which of the latest stored messages the change would read differently.
    #[arg(long)]
    dry_run: bool,
    /// How many of the latest stored messages `--dry-run` reads.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    last: u32,
}

#[derive(Debug, Subcommand)]
pub enum MessageCommand {
    /// Stored messages, newest first, with what was done and the rules that did it. The filters are the
    /// console's and the API's; a value out of range is an error that names it.
    List(Box<MessageFilters>),
    /// One message: its text, what was decided and every reason, and how the bridge's data (`bridge.data_dir`
    /// or the shipped files, as loaded now from disk, with the admins' lexicon changes) reads it.
    Show { id: i64 },
}

/// The filters of `webcare message list`, as given: `webcare_app::messages::query` checks them.
#[derive(Debug, clap::Args)]
pub struct MessageFilters {
    /// auto_answer, hold_and_subscribe, ticket, move_private, ignore or undecided.
    #[arg(long)]
    action: Option<String>,
    /// outage, case or other.
    #[arg(long)]
    intent: Option<String>,
    /// outage, billing, technical, contract, moving or other.
    #[arg(long)]
    category: Option<String>,
    /// internet, tv, mobile, landline or unknown.
    #[arg(long)]
    service: Option<String>,
    /// discord, telegram or webchat.
    #[arg(long)]
    platform: Option<String>,
    /// Messages answered from this notice.
    #[arg(long)]
    notice: Option<String>,
    /// Messages held in this outage cluster.
    #[arg(long)]
    cluster: Option<String>,
    /// Messages filed in this ticket.
    #[arg(long)]
    ticket: Option<String>,
    /// Only messages whose text contains this, ignoring case.
    #[arg(long = "text", value_name = "TEXT")]
    q: Option<String>,
    /// Only the last this many hours.
    #[arg(long)]
    hours: Option<String>,
    /// Only messages older than this one (the next page).
    #[arg(long)]
    before: Option<String>,
    /// How many (default 50, at most 500).
    #[arg(long)]
    limit: Option<String>,
    /// One JSON object per line, as `GET /api/v1/messages` gives them.
    #[arg(long)]
    json: bool,
}

/// A word of one of the domain's enums, with the words it knows in the error.
fn word<T: std::str::FromStr>(s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.trim().to_lowercase().parse::<T>().map_err(|e| e.to_string())
}

/// `LANG=TEXT`, as in `en="We are working on it."`.
fn translation(s: &str) -> Result<(String, String), String> {
    let (language, text) = s.split_once('=').ok_or("expected LANG=TEXT, as in en=\"We are working on it.\"")?;
    let language = language.trim().to_lowercase();
    if language.len() != 2 || !language.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(format!("`{language}` is no two-letter language code (nl, en, fr, de)"));
    }
    Ok((language, text.trim().to_owned()))
}

/// Opens the database, runs `work` on it and closes it, whatever `work` gave.
async fn with_db<T>(config: &Config, work: impl AsyncFnOnce(&Arc<Db>) -> anyhow::Result<T>) -> anyhow::Result<T> {
    let db = Arc::new(open_db(config).await?);
    let result = work(&db).await;
    db.close().await;
    result
}

async fn agent_named(db: &Db, name: &str) -> anyhow::Result<Agent> {
    db.agent_by_name(name.trim())
        .await?
        .with_context(|| format!("no agent is named `{}` (`webcare agent list` shows them)", name.trim()))
}

fn check_name(name: &str) -> anyhow::Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        bail!("a name has 1 to 100 printable characters");
    }
    Ok(name.to_owned())
}

/// The console's rule for a password, read from the first line of standard input and hashed.
fn password_from_stdin() -> anyhow::Result<String> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).context("read the password from standard input")?;
    let password = input.lines().next().unwrap_or_default();
    if !webcare_web::auth::password_acceptable(password) {
        use webcare_web::auth::{MAX_PASSWORD_BYTES, MIN_PASSWORD};
        bail!("the password on standard input must have {MIN_PASSWORD} to {MAX_PASSWORD_BYTES} characters");
    }
    webcare_web::auth::hash_password(password).map_err(anyhow::Error::msg)
}

pub async fn agent(config: &Config, command: AgentCommand) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    match command {
        AgentCommand::Add { name, role, password_stdin } => {
            let name = check_name(&name)?;
            let password_hash = if password_stdin { Some(password_from_stdin()?) } else { None };
            let (agent, token) = with_db(config, async |db| {
                let agent = db.create_agent(NewAgent { name, role, password_hash, at: now }).await?;
                let token = webcare_web::auth::new_api_token();
                db.add_api_token(agent.id, &webcare_web::auth::hash_api_token(&token), now).await?;
                Ok((agent, token))
            })
            .await
            .context("create the agent")?;
            println!(
                "created {} `{}` (id {}); its API token follows and is shown only this once:",
                agent.role, agent.name, agent.id
            );
            println!("{token}");
        }
        AgentCommand::List => {
            let lines = with_db(config, async |db| {
                let mut lines = Vec::new();
                for a in db.agents().await? {
                    let accounts = db.chat_accounts(a.id).await?;
                    let accounts = if accounts.is_empty() {
                        String::new()
                    } else {
                        let named: Vec<String> = accounts.iter().map(|(p, user)| format!("{p} {user}")).collect();
                        format!(" · chat accounts: {}", named.join(", "))
                    };
                    lines.push(format!(
                        "{} {} · {} · {}{}{accounts}",
                        a.id,
                        a.name,
                        a.role,
                        if a.active { "active" } else { "deactivated" },
                        if a.password_hash.is_some() { " · console login" } else { "" },
                    ));
                }
                Ok(lines)
            })
            .await?;
            if lines.is_empty() {
                println!("no agents yet: `webcare agent add --name NAME --role admin` creates the first");
            }
            for line in lines {
                println!("{line}");
            }
        }
        AgentCommand::Role { name, role } => {
            let agent = with_db(config, async |db| {
                let agent = agent_named(db, &name).await?;
                if agent.role == Role::Admin && role != Role::Admin {
                    last_admin_stays(db, &agent).await?;
                }
                let agent = db.set_agent_role(agent.id, role).await?;
                db.delete_agent_sessions(agent.id).await?;
                Ok(agent)
            })
            .await?;
            println!("{} `{}` is now {}; their console sessions ended", agent.id, agent.name, agent.role);
        }
        AgentCommand::Deactivate { name } => {
            let agent = with_db(config, async |db| {
                let agent = agent_named(db, &name).await?;
                if agent.role == Role::Admin {
                    last_admin_stays(db, &agent).await?;
                }
                let agent = db.set_agent_active(agent.id, false).await?;
                db.delete_agent_sessions(agent.id).await?;
                Ok(agent)
            })
            .await?;
            println!(
                "{} `{}` is deactivated: no login, API token or staff-chat command works for them",
                agent.id, agent.name
            );
        }
        AgentCommand::Activate { name } => {
            let agent = with_db(config, async |db| {
                let agent = agent_named(db, &name).await?;
                Ok(db.set_agent_active(agent.id, true).await?)
            })
            .await?;
            println!("{} `{}` is active again", agent.id, agent.name);
        }
        AgentCommand::Password { name, password_stdin: _ } => {
            let hash = password_from_stdin()?;
            let agent = with_db(config, async |db| {
                let agent = agent_named(db, &name).await?;
                let agent = db.set_agent_password(agent.id, &hash).await?;
                db.delete_agent_sessions(agent.id).await?;
                Ok(agent)
            })
            .await?;
            println!("{} `{}` has a new console password; their console sessions ended", agent.id, agent.name);
        }
        AgentCommand::Token { name } => {
            let (agent, token) = with_db(config, async |db| {
                let agent = agent_named(db, &name).await?;
                let token = webcare_web::auth::new_api_token();
                db.add_api_token(agent.id, &webcare_web::auth::hash_api_token(&token), now).await?;
                Ok((agent, token))
            })
            .await?;
            println!("a new API token for {} `{}` follows and is shown only this once:", agent.id, agent.name);
            println!("{token}");
        }
    }
    Ok(())
}

/// Refuses to take the last active admin's role: nobody could manage notices or agents any more, in the console or
/// here without touching the database.
async fn last_admin_stays(db: &Db, agent: &Agent) -> anyhow::Result<()> {
    let others =
        db.agents().await?.into_iter().filter(|a| a.role == Role::Admin && a.active && a.id != agent.id).count();
    if agent.active && others == 0 {
        bail!("`{}` is the last active admin: make another agent admin first", agent.name);
    }
    Ok(())
}

/// `Notices` for this process, which runs no bridge: the serving instances send what it queues.
async fn notices(config: &Config, db: &Arc<Db>) -> anyhow::Result<Notices> {
    let store: Arc<dyn webcare_domain::Store> = db.clone();
    let announcements = crate::serve::announcement_channels(store.as_ref(), config).await?;
    Ok(Notices::detached(store, config.notices.four_eyes)
        .with_announcements(announcements)
        .with_paid_fee(config.delivery.telegram_paid_stars_per_message))
}

fn scope(notice: &Notice) -> String {
    let services = if notice.services.is_empty() {
        "every service".to_owned()
    } else {
        notice.services.iter().map(Service::to_string).collect::<Vec<_>>().join(", ")
    };
    let regions = if notice.regions.is_empty() { "nationwide".to_owned() } else { notice.regions.join(", ") };
    format!("{services} · {regions}")
}

fn line(notice: &Notice) -> String {
    let waiting = if notice.draft { " · draft, awaiting approval" } else { "" };
    format!(
        "{} {} · {} · {} · version {}{waiting}",
        notice.id,
        notice.title,
        notice.state,
        scope(notice),
        notice.version
    )
}

/// What became of a published notice: how many get it now, or that it waits for approval.
async fn published(db: &Db, notices: &Notices, notice: &Notice, what: &str) -> anyhow::Result<String> {
    if notice.draft {
        return Ok(format!(
            "notice {} {what} (version {}) as a draft: customers see it once it is approved \
             (`webcare notice approve {} --as ADMIN`, by another admin under four eyes)",
            notice.id, notice.version, notice.id
        ));
    }
    let progress = notices.progress(notice.id).await?;
    Ok(format!(
        "notice {} {what} (version {}, {}): {} subscribers get it{}; `webcare broadcast status {} --follow` shows the \
         broadcast",
        notice.id,
        notice.version,
        notice.state,
        progress.subscribers,
        waiting(db, notice).await?,
        notice.id
    ))
}

/// The customers in open outage clusters of the notice's services: only the running `serve` knows which of them
/// the notice covers (it closes those clusters into it within seconds), so the admin sees the candidates rather
/// than a count of subscribers that leaves them out.
async fn waiting(db: &Db, notice: &Notice) -> anyhow::Result<String> {
    if !notice.is_active() {
        return Ok(String::new());
    }
    let clusters: Vec<String> = db
        .open_clusters()
        .await?
        .into_iter()
        .filter(|c| webcare_bridge::engine::covers_service(notice, c.service))
        .map(|c| {
            let customers = if c.members == 1 { "1 customer".to_owned() } else { format!("{} customers", c.members) };
            format!("cluster {} ({}, {}, {customers})", c.id, c.service, c.region.as_deref().unwrap_or("no place"))
        })
        .collect();
    Ok(match clusters.len() {
        0 => String::new(),
        n => format!(
            " now, and the running `webcare serve` sends it within seconds to the customers waiting in the open \
             outage clusters it covers; open for its services: {}{}",
            clusters[..n.min(5)].join(", "),
            if n > 5 { format!(" and {} more", n - 5) } else { String::new() }
        ),
    })
}

pub async fn notice(config: &Config, command: NoticeCommand) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let said = with_db(config, async |db| {
        // Reading needs no `Notices`, whose announcement channels are registered (written) in the database.
        let command = match command {
            NoticeCommand::List { all } => return list(db, all).await,
            NoticeCommand::Show { id } => return show(db, config, NoticeId(id)).await,
            command => command,
        };
        let notices = notices(config, db).await?;
        match command {
            NoticeCommand::List { .. } | NoticeCommand::Show { .. } => unreachable!("answered above"),
            NoticeCommand::Create {
                author,
                title,
                text,
                translations,
                services,
                regions,
                state,
                draft,
                paid_broadcast,
            } => {
                let author = agent_named(db, &author).await?;
                let input = NoticeInput {
                    title,
                    text,
                    texts: translations.into_iter().collect(),
                    services,
                    regions,
                    state,
                    draft,
                    paid_broadcast,
                };
                let notice = notices.create(input, &author, now).await?;
                published(db, &notices, &notice, "created").await
            }
            NoticeCommand::Update {
                id,
                author,
                state,
                text,
                translations,
                services,
                all_services,
                regions,
                nationwide,
                publish,
            } => {
                let author = agent_named(db, &author).await?;
                let change = NoticeChange {
                    state,
                    text,
                    texts: (!translations.is_empty()).then(|| translations.into_iter().collect::<BTreeMap<_, _>>()),
                    services: (all_services || !services.is_empty()).then_some(services),
                    regions: (nationwide || !regions.is_empty()).then_some(regions),
                    draft: publish.then_some(false),
                    ..Default::default()
                };
                if change == NoticeChange::default() {
                    bail!(
                        "nothing to change: give --state, --text, --translation, --service, --region, --nationwide, \
                         --all-services or --publish"
                    );
                }
                let updated = notices.update(NoticeId(id), change, &author, now).await?;
                if updated.proposed {
                    return Ok(format!(
                        "notice {id}'s new text awaits another admin's approval (`webcare notice approve {id} --as \
                         ADMIN`); customers keep version {} until then",
                        updated.notice.version
                    ));
                }
                published(db, &notices, &updated.notice, "updated").await
            }
            NoticeCommand::Approve { id, approver } => {
                let approver = agent_named(db, &approver).await?;
                let notice = notices.approve(NoticeId(id), &approver, now).await?;
                published(db, &notices, &notice, "approved").await
            }
        }
    })
    .await?;
    println!("{said}");
    Ok(())
}

async fn list(db: &Db, all: bool) -> anyhow::Result<String> {
    let list: Vec<String> =
        db.notices(false).await?.iter().filter(|n| all || n.state != NoticeState::Resolved).map(line).collect();
    Ok(if list.is_empty() {
        if all { "no notices yet".to_owned() } else { "no open notices".to_owned() }
    } else {
        list.join("\n")
    })
}

async fn show(db: &Db, config: &Config, id: NoticeId) -> anyhow::Result<String> {
    let notice = match db.notice(id).await {
        Ok(n) => n,
        Err(StoreError::NotFound { .. }) => bail!("notice {id} not found"),
        Err(e) => return Err(e.into()),
    };
    let names: BTreeMap<_, _> = db.agents().await?.into_iter().map(|a| (a.id, a.name)).collect();
    let name = |id: Option<webcare_domain::AgentId>| {
        id.map_or("-".to_owned(), |id| names.get(&id).cloned().unwrap_or_else(|| id.to_string()))
    };
    let mut out = vec![line(&notice), format!("text: {}", notice.text)];
    for (language, text) in &notice.texts {
        out.push(format!("text ({language}): {text}"));
    }
    if let Some(cluster) = notice.cluster {
        out.push(format!("published from cluster {cluster}"));
    }
    for v in db.notice_versions(id).await? {
        // An approval is a version of its own, with the approver and no author.
        let who = match (v.author, v.approved_by) {
            (None, Some(approver)) => format!("approved by {}", name(Some(approver))),
            (author, Some(approver)) => format!("by {}, approved by {}", name(author), name(Some(approver))),
            (author, None) => format!("by {}", name(author)),
        };
        out.push(format!(
            "version {} · {} · {} · {who}",
            v.version,
            v.state,
            v.created_at.format("%Y-%m-%d %H:%M UTC")
        ));
    }
    if let Some(waiting) = db.notice_proposal(id).await? {
        let change = &waiting.change;
        out.push(format!(
            "awaiting approval, by {} at {}: {}",
            name(Some(waiting.author)),
            waiting.created_at.format("%Y-%m-%d %H:%M UTC"),
            change.text.as_deref().unwrap_or("(the same text, other translations)")
        ));
    }
    let p = webcare_app::notices::progress(db, id, config.delivery.telegram_paid_stars_per_message).await?;
    out.push(format!(
        "broadcast of version {}: {} subscribers, sent {}, failed {}, pending {}",
        p.version, p.subscribers, p.sent, p.failed, p.pending
    ));
    Ok(out.join("\n"))
}

pub async fn alert(config: &Config, command: AlertCommand) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let said = with_db(config, async |db| match command {
        AlertCommand::List { hours } => {
            let alerts = db.alerts_since(now - chrono::Duration::hours(i64::from(hours))).await?;
            if alerts.is_empty() {
                return Ok(format!("no spike alerts in the last {hours} hours"));
            }
            let clusters = webcare_app::alerts::alert_clusters(db.as_ref(), &alerts).await?;
            let mut out = Vec::new();
            for a in &alerts {
                let outcome = match webcare_app::alerts::outcome(&clusters, a) {
                    AlertOutcome::Answered(n) => format!("answered by notice {n}"),
                    AlertOutcome::Expired => "expired into tickets".to_owned(),
                    AlertOutcome::Waiting => format!("waiting: `webcare alert publish {} --as ADMIN`", a.id),
                    AlertOutcome::Gone => "its cluster is gone".to_owned(),
                };
                out.push(format!(
                    "{} {} in {} · {} customers · raised {} · {outcome}",
                    a.id,
                    a.service,
                    a.region.as_deref().unwrap_or("an unknown region"),
                    a.count,
                    a.created_at.format("%Y-%m-%d %H:%M UTC"),
                ));
                for sample in a.samples.iter().take(3) {
                    out.push(format!("    > {}", sample.split_whitespace().collect::<Vec<_>>().join(" ")));
                }
            }
            Ok(out.join("\n"))
        }
        AlertCommand::Publish { id, author, title, text, translations, state } => {
            let author = agent_named(db, &author).await?;
            let notices = notices(config, db).await?;
            let alert = match db.alert(AlertId(id)).await {
                Ok(a) => a,
                Err(StoreError::NotFound { .. }) => bail!("alert {id} not found (`webcare alert list` shows them)"),
                Err(e) => return Err(e.into()),
            };
            let (text, mut texts) = match text {
                Some(text) => (text, BTreeMap::new()),
                None => alert.draft_texts(),
            };
            texts.extend(translations);
            let title = title.unwrap_or_else(|| alert.notice_title());
            let notice = notices.publish_from_alert(alert.id, title, text, texts, state, &author, now).await?;
            published(db, &notices, &notice, &format!("published from alert {id}")).await
        }
    })
    .await?;
    println!("{said}");
    Ok(())
}

pub async fn report(config: &Config, days: u32, json: bool) -> anyhow::Result<()> {
    let zone = crate::cli::ticket_policy(config)?.sla.timezone;
    let report =
        with_db(
            config,
            async |db| Ok(webcare_app::reports::report(db.as_ref(), chrono::Utc::now(), days, zone).await?),
        )
        .await?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let joined = |counts: &mut dyn Iterator<Item = (&str, u64)>| {
        counts.map(|(name, n)| format!("{name} {n}")).collect::<Vec<_>>().join(" · ")
    };
    println!(
        "{} to {} ({days} days, {}): {} messages, {} spike alerts{}",
        report.days.first().map_or("", |d| d.date.as_str()),
        report.to.with_timezone(&zone).format("%Y-%m-%d %H:%M"),
        report.timezone,
        report.messages,
        report.spikes.len(),
        if report.cut { "; only the oldest 200,000 messages are counted" } else { "" }
    );
    println!("messages per day (days without any left out):");
    for day in report.days.iter().filter(|d| d.messages > 0) {
        let categories = joined(&mut day.categories.iter().map(|(c, n)| (c.as_str(), *n)));
        println!("  {}  {:>6}  {categories}", day.date, day.messages);
    }
    let regions = joined(&mut report.regions.iter().take(10).map(|r| (r.name.as_str(), r.messages)));
    println!("regions (the ten with most messages): {}", if regions.is_empty() { "none" } else { &regions });
    for spike in &report.spikes {
        println!(
            "spike alert {}: {} in {}, {} customers, {}",
            spike.alert,
            spike.service,
            spike.region.as_deref().unwrap_or("an unknown region"),
            spike.customers,
            spike.at.format("%Y-%m-%d %H:%M UTC")
        );
    }
    println!(
        "tickets opened, by their state now: {}",
        joined(&mut report.tickets.iter().map(|(s, n)| (s.as_str(), *n)))
    );
    let f = &report.first_response;
    match (f.median_minutes, f.p90_minutes) {
        (Some(median), Some(p90)) => {
            println!("first response: {} answered, median {median} min, 90% within {p90} min", f.answered)
        }
        _ => println!("first response: no ticket of the period answered yet"),
    }
    Ok(())
}

/// What was done with a message, in a line: the action or command, and the notice, cluster and ticket.
fn done(why: &webcare_app::messages::Why) -> String {
    let mut out = match (&why.command, &why.action) {
        (Some(command), _) => format!("command /{command}"),
        (None, Some(action)) => action.clone(),
        (None, None) => "not decided yet".to_owned(),
    };
    for (what, id) in [("notice", why.notice), ("cluster", why.cluster), ("ticket", why.ticket)] {
        if let Some(id) = id {
            out.push_str(&format!(" {what} {id}"));
        }
    }
    if why.merged {
        out.push_str(" (merged by flood control)");
    }
    out
}

/// The reading of a message in a line: intent, category, service, region, private data.
fn reading(why: &webcare_app::messages::Why) -> String {
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let mut out = format!(
        "{}/{}/{}/{}",
        or_dash(&why.intent),
        or_dash(&why.category),
        or_dash(&why.service),
        or_dash(&why.region)
    );
    if !why.pii.is_empty() {
        out.push_str(&format!(" private data: {}", why.pii.join(", ")));
    }
    out
}

pub async fn message(config: &Config, command: MessageCommand) -> anyhow::Result<()> {
    use webcare_app::messages;
    let said = with_db(config, async |db| match command {
        MessageCommand::List(filters) => {
            let MessageFilters {
                action,
                intent,
                category,
                service,
                platform,
                notice,
                cluster,
                ticket,
                q,
                hours,
                before,
                limit,
                json,
            } = *filters;
            let given = [
                ("action", action),
                ("intent", intent),
                ("category", category),
                ("service", service),
                ("platform", platform),
                ("notice", notice),
                ("cluster", cluster),
                ("ticket", ticket),
                ("q", q),
                ("hours", hours),
                ("before", before),
                ("limit", limit),
            ];
            let pairs = given.iter().filter_map(|(k, v)| v.as_deref().map(|v| (*k, v)));
            let query = messages::query(pairs, chrono::Utc::now()).map_err(anyhow::Error::msg)?;
            let page = db.inbound_page(&query.filter, query.limit).await?;
            if json {
                let lines: Vec<String> = page.iter().map(|m| messages::message_record(m).to_string()).collect();
                return Ok(lines.join("\n"));
            }
            if page.is_empty() {
                return Ok("no messages match".to_owned());
            }
            let mut out = Vec::new();
            for m in &page {
                let why = m.decision.as_ref().map(messages::why).unwrap_or_default();
                out.push(format!(
                    "{} {} {} · {} · {} · {}",
                    m.id,
                    m.received_at.format("%Y-%m-%d %H:%M UTC"),
                    m.platform,
                    reading(&why),
                    done(&why),
                    if why.rules.is_empty() { "-".to_owned() } else { why.rules.join(" -> ") },
                ));
                let text: String = m.text.split_whitespace().collect::<Vec<_>>().join(" ");
                out.push(format!("    > {}", text.chars().take(140).collect::<String>()));
            }
            if page.len() == query.limit as usize
                && let Some(last) = page.last()
            {
                out.push(format!("older: add --before {}", last.id));
            }
            Ok(out.join("\n"))
        }
        MessageCommand::Show { id } => {
            let m = match db.inbound(webcare_domain::InboundId(id)).await {
                Ok(m) => m,
                Err(StoreError::NotFound { .. }) => bail!("message {id} not found (`webcare message list` shows them)"),
                Err(e) => return Err(e.into()),
            };
            let mut out = vec![
                format!(
                    "message {} · {} on {} · conversation {}",
                    m.id,
                    m.received_at.format("%Y-%m-%d %H:%M UTC"),
                    m.platform,
                    m.conversation
                ),
                format!("> {}", m.text),
            ];
            if let Some(place) = &m.place {
                out.push(format!("platform location: {place}"));
            }
            let then = m.decision.as_ref().map(messages::why);
            match &then {
                Some(why) => {
                    out.push(format!("decided: {} · {}", done(why), reading(why)));
                    if let Some(c) = why.cluster {
                        match db.cluster(webcare_domain::ClusterId(c)).await {
                            Ok(cluster) => out.push(format!("cluster {c} since: {}", messages::cluster_fate(&cluster))),
                            Err(StoreError::NotFound { .. }) => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                    out.extend(why.reasons.iter().map(|r| format!("  - {r}")));
                }
                None => out.push("not decided yet".to_owned()),
            }
            if !m.text.trim().is_empty() {
                let classifier = crate::cli::classifier_with(config, &db.lexicon_changes().await?)?;
                let now =
                    messages::why(&messages::classification_record(&classifier.classify(&m.text, m.place.as_deref())));
                let verdict = match then.as_ref().filter(|w| w.intent.is_some()) {
                    Some(then) => {
                        let changes = messages::changes(then, &now);
                        if changes.is_empty() {
                            " (the same reading)".to_owned()
                        } else {
                            format!(" (differs: {})", changes.join(", "))
                        }
                    }
                    None => String::new(),
                };
                out.push(format!("with the data now (files and lexicon changes): {}{verdict}", reading(&now)));
                out.extend(now.reasons.iter().map(|r| format!("  - {r}")));
            }
            Ok(out.join("\n"))
        }
    })
    .await?;
    println!("{said}");
    Ok(())
}

/// The admins' lexicon and region changes kept in the configured database.
pub async fn lexicon_changes(config: &Config) -> anyhow::Result<Vec<webcare_domain::LexiconChange>> {
    with_db(config, async |db| Ok(db.lexicon_changes().await?)).await
}

/// `webcare lexicon`: the admins' changes to the lexicons, kept in the database and applied by every instance.
pub async fn lexicon(config: &Config, command: LexiconCommand) -> anyhow::Result<()> {
    use webcare_app::lexicon::{Edit, change, check, preview, read_with_change, undo, unkept};
    use webcare_domain::TermEdit;
    let now = chrono::Utc::now();
    let said = with_db(config, async |db| {
        // As `serve` loads it: the data files here with the changes over them. An undo needs none of it.
        let load = async || -> anyhow::Result<_> {
            let changes = db.lexicon_changes().await?;
            let current = crate::cli::classifier_with(config, &changes)?;
            Ok((changes, current))
        };
        let (args, edit) = match command {
            LexiconCommand::Undo { id, author } => {
                let author = agent_named(db, &author).await?;
                undo(db.as_ref(), webcare_domain::LexiconChangeId(id), &author, now).await?;
                return Ok(format!(
                    "lexicon change {id} taken back: every running instance applies it within a few seconds"
                ));
            }
            LexiconCommand::List { language, group } => {
                let (changes, current) = load().await?;
                return Ok(lexicon_list(&current.lexicon(), &changes, language, group));
            }
            LexiconCommand::Add(args) => (args, TermEdit::Add),
            LexiconCommand::Remove(args) => (args, TermEdit::Remove),
        };
        let (_, current) = load().await?;
        let loaded = current.lexicon();
        let edit = Edit { language: &args.language, group: &args.group, term: &args.term, edit };
        let proposed = unkept(edit, now);
        let what = proposed.describe();
        if args.dry_run {
            check(&loaded, edit)?;
            let read = |texts: &[(&str, Option<&str>)]| read_with_change(&current, &proposed, texts);
            let (read, differ) = preview(db.as_ref(), read, args.last)
                .await?
                .context("the data files with this change do not load (the log says why)")?;
            let mut out = vec![format!(
                "dry run, nothing changed: {what} would read {} of the latest {read} stored messages differently{}",
                differ.len(),
                if differ.is_empty() { "" } else { ":" }
            )];
            for (m, changes) in differ {
                out.push(format!("{} {}: {}", m.id, m.received_at.format("%Y-%m-%d %H:%M UTC"), changes.join(", ")));
                out.push(format!("    > {}", m.text.split_whitespace().collect::<Vec<_>>().join(" ")));
            }
            return Ok(out.join("\n"));
        }
        let author =
            args.author.as_deref().context("--as ADMIN names who makes the change (or try it with --dry-run)")?;
        let author = agent_named(db, author).await?;
        let kept = change(db.as_ref(), &loaded, edit, &author, now).await?;
        Ok(format!(
            "lexicon change {}: {what}; every running instance applies it within a few seconds (`webcare lexicon \
             undo {} --as ADMIN` takes it back)",
            kept.id, kept.id
        ))
    })
    .await?;
    println!("{said}");
    Ok(())
}

fn lexicon_list(
    loaded: &[webcare_domain::LexiconGroup],
    changes: &[webcare_domain::LexiconChange],
    language: Option<String>,
    group: Option<String>,
) -> String {
    use webcare_app::lexicon::REGIONS;
    let mut out = Vec::new();
    // The provinces and places (hundreds) only when asked for by `--language regions` or a group's name.
    let wanted = |g: &&webcare_domain::LexiconGroup| match (&language, &group) {
        (Some(l), _) => *l == g.language,
        (None, Some(_)) => true,
        (None, None) => g.language != REGIONS,
    };
    let regions = loaded.iter().filter(|g| g.language == REGIONS).count();
    for g in loaded.iter().filter(wanted).filter(|g| group.as_ref().is_none_or(|n| *n == g.name)) {
        out.push(format!(
            "{} {} · {} {} · weight {} · {} terms",
            g.language,
            g.name,
            g.intent,
            g.category,
            g.weight,
            g.terms.len()
        ));
        if group.is_some() {
            out.extend(g.terms.iter().map(|t| format!("    {t}")));
        }
    }
    if out.is_empty() {
        out.push("no such group (`webcare lexicon list` shows them all)".to_owned());
    } else if language.is_none() && group.is_none() && regions > 0 {
        out.push(format!(
            "and {regions} provinces and places, whose terms are their other names (`--language regions`)"
        ));
    }
    if !changes.is_empty() {
        out.push("changes by admins, applied over the data files:".to_owned());
        for c in changes {
            out.push(format!("  {} {} · {}", c.id, c.describe(), c.created_at.format("%Y-%m-%d %H:%M UTC")));
        }
    }
    out.join("\n")
}

/// `webcare reload`: checks that the bridge's data files load here, then asks every running instance, through the
/// database, to read them again; each does within a few seconds and says so in its log.
pub async fn reload(config: &Config) -> anyhow::Result<()> {
    crate::cli::classifier(config).context("nothing was requested: the data files do not load here")?;
    let generation = with_db(config, async |db| {
        Ok(db.request_reload(webcare_app::intake::RELOAD_BRIDGE_DATA, "command line", chrono::Utc::now()).await?)
    })
    .await?;
    println!(
        "reload request {generation}: every running instance reads the bridge's data files again within a few \
         seconds (its log says \"bridge data reloaded\", or names a file that does not load there)"
    );
    Ok(())
}
