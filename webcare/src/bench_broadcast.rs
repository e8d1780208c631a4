//! `webcare bench broadcast`: a notice update to N subscribers, end to end.
//!
//! The benchmark plays the platform and the admin; webcare is a real `webcare serve` child process with its own
//! database connection, so its memory is measured alone. The fake Telegram or Discord server runs in this process
//! with the platform's rate limits enforced, its clock `--scale` times faster, and webcare's limits scaled alike
//! (`delivery.rate_scale`). An admin updates the notice through the REST API (one new version for every
//! subscriber), and while the broadcast runs an agent answers a customer through the API every 250 ms; the
//! answer's latency is measured until the fake platform has it.
//!
//! Reported: the achieved rate as a share of the allowed one (from the first to the last broadcast message), the
//! 429s the fake answered, duplicates and lost recipients (per chat, at the fake), the agents' answer latency p50
//! and p99, and the child's peak resident memory (`VmHWM`).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use webcare_domain::{NewAgent, NewCustomer, NewNotice, NewTicket, NoticeState, Platform, Role, Service, Store as _};
use webcare_storage::{Db, OpenOptions};

/// The fake platform under the broadcast.
enum Fake {
    Telegram(webcare_fake_telegram::FakeTelegram),
    Discord(webcare_fake_discord::FakeDiscord),
}

impl Fake {
    /// Messages delivered, recipients reached, 429s.
    fn reach(&self) -> (u64, usize, u64) {
        match self {
            Fake::Telegram(f) => f.reach(),
            Fake::Discord(f) => f.reach(),
        }
    }

    /// Whether the customer's chat has a bot message with this text.
    fn has_answer(&self, chat: i64, text: &str) -> bool {
        match self {
            Fake::Telegram(f) => {
                f.bot_messages(webcare_fake_telegram::ChatId(chat)).iter().any(|m| m.text.contains(text))
            }
            Fake::Discord(f) => {
                f.bot_messages(webcare_fake_discord::ChannelId(chat as u64)).iter().any(|m| m.content.contains(text))
            }
        }
    }

    /// Recipients that got more than one message, and the messages beyond the first.
    fn duplicates(&self, skip: i64) -> u64 {
        let extra = |n: u64| n.saturating_sub(1);
        match self {
            Fake::Telegram(f) => {
                f.stats().deliveries_per_chat.iter().filter(|(c, _)| **c != skip).map(|(_, n)| extra(*n)).sum()
            }
            Fake::Discord(f) => f
                .stats()
                .deliveries_per_channel
                .iter()
                .filter(|(c, _)| **c as i64 != skip)
                .map(|(_, n)| extra(*n))
                .sum(),
        }
    }
}

pub async fn run(
    subscribers: usize,
    platform: &str,
    scale: f64,
    headroom: f64,
    database: Option<String>,
) -> anyhow::Result<()> {
    if subscribers == 0 || scale.is_nan() || scale <= 0.0 {
        bail!("--subscribers must be at least 1 and --scale above 0");
    }
    let platform: Platform = match platform {
        "telegram" => Platform::Telegram,
        "discord" => Platform::Discord,
        other => bail!("--platform {other}: expected telegram or discord"),
    };
    let dir = tempfile::tempdir().context("create a temporary directory")?;
    let url = database.unwrap_or_else(|| format!("sqlite://{}", dir.path().join("bench.db").display()));
    // On PostgreSQL in a database of its own, as `bench ingest`: a second run would find the first one's agents.
    let fresh = crate::bench::FreshPostgres::create(&url, "broadcast").await?;
    let result = measure(subscribers, platform, scale, headroom, fresh.as_ref().map_or(&url, |f| &f.url), &dir).await;
    if let Some(fresh) = fresh {
        fresh.drop_database().await?;
    }
    result
}

async fn measure(
    subscribers: usize,
    platform: Platform,
    scale: f64,
    headroom: f64,
    url: &str,
    dir: &tempfile::TempDir,
) -> anyhow::Result<()> {
    // The platform: N customers in private chats, and one more who talks to an agent during the broadcast.
    let setup = Instant::now();
    let (fake, chats, customer_chat, allowed_per_s, platform_config) = match platform {
        Platform::Telegram => {
            let config = webcare_fake_telegram::Config { time_scale: scale, ..Default::default() };
            let fake = webcare_fake_telegram::FakeTelegram::start_with(config).await;
            let mut chats = Vec::with_capacity(subscribers);
            for i in 0..=subscribers {
                let user = fake.create_user(webcare_fake_telegram::NewUser::named(&format!("klant {i}")));
                chats.push(fake.private_chat(user).0);
            }
            let customer = chats.pop().expect("one more than the subscribers");
            let toml = format!("[telegram]\ntoken = {:?}\napi_url = {:?}\n", fake.token(), fake.url());
            (Fake::Telegram(fake), chats, customer, 30.0 * scale, toml)
        }
        _ => {
            let config = webcare_fake_discord::Config { time_scale: scale, ..Default::default() };
            let fake = webcare_fake_discord::FakeDiscord::start_with(config).await;
            let mut chats = Vec::with_capacity(subscribers);
            for i in 0..=subscribers {
                let user = fake.create_user(webcare_fake_discord::NewUser::named(&format!("klant{i}")));
                chats.push(fake.dm_channel(user).0 as i64);
            }
            let customer = chats.pop().expect("one more than the subscribers");
            let toml = format!("[discord]\ntoken = {:?}\napi_url = {:?}\n", fake.token(), fake.api_url());
            (Fake::Discord(fake), chats, customer, 50.0 * scale, toml)
        }
    };

    // The database: the subscribers of a notice, a customer's ticket, an admin and an agent with API tokens.
    let db = Db::open(url, &OpenOptions { max_connections: 4, ..OpenOptions::default() }).await?;
    let now = chrono::Utc::now();
    let notice = db
        .create_notice(NewNotice::published(
            "Storing internet Utrecht",
            "We onderzoeken een storing in Utrecht.",
            vec![Service::Internet],
            &["Utrecht"],
            NoticeState::Investigating,
            now,
        ))
        .await?;
    let ids: Vec<String> = chats.iter().map(i64::to_string).collect();
    db.seed_subscribers(notice.id, platform, &ids, now).await?;
    let customer = db
        .upsert_customer(
            NewCustomer { platform, platform_user_id: "bench-customer".into(), display_name: "Anna".into() },
            now,
        )
        .await?;
    let conversation = db
        .upsert_conversation(
            webcare_domain::NewConversation {
                platform,
                platform_chat_id: customer_chat.to_string(),
                kind: webcare_domain::ConversationKind::Private,
                title: None,
            },
            now,
        )
        .await?;
    let ticket = db
        .create_ticket(NewTicket {
            conversation: conversation.id,
            customer: customer.id,
            subject: "Factuur klopt niet".into(),
            priority: 3,
            category: "billing".into(),
            due_at: None,
            first_response_due_at: None,
            resolution_due_at: None,
            tags: Vec::new(),
            at: now,
        })
        .await?;
    let mut tokens = Vec::new();
    for (name, role) in [("bench-admin", Role::Admin), ("bench-agent", Role::Agent)] {
        let agent = db.create_agent(NewAgent { name: name.into(), role, password_hash: None, at: now }).await?;
        let token = webcare_web::auth::new_api_token();
        db.add_api_token(agent.id, &webcare_web::auth::hash_api_token(&token), now).await?;
        tokens.push(token);
    }
    let (admin_token, agent_token) = (tokens[0].clone(), tokens[1].clone());
    db.close().await;
    let setup = setup.elapsed();

    // webcare itself.
    let port = free_port()?;
    let config_path = dir.path().join("webcare.toml");
    std::fs::write(
        &config_path,
        format!(
            "[database]\nurl = {url:?}\n[http]\nlisten = \"127.0.0.1:{port}\"\n[log]\nlevel = \"warn\"\n\
             [delivery]\nrate_scale = {scale}\nheadroom = {headroom}\nbatch = 512\n{platform_config}"
        ),
    )?;
    let log_path = dir.path().join("serve.log");
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path)?)
        .kill_on_drop(true)
        .spawn()
        .context("start webcare serve")?;
    let pid = child.id().context("the child's pid")?;
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let ready_by = Instant::now() + Duration::from_secs(60);
    while http(addr, "GET", "/readyz", None, "").await.ok().map(|(s, _)| s) != Some(200) {
        if Instant::now() > ready_by || child.try_wait()?.is_some() {
            bail!("webcare serve did not become ready; its log:\n{}", read_log(&log_path));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The admin updates the notice: version 2 for every subscriber.
    let (before, _, _) = fake.reach();
    let started = Instant::now();
    let body = r#"{"text": "We werken aan een storing in Utrecht; verwacht herstel 14:00."}"#;
    let (status, answer) =
        http(addr, "PATCH", &format!("/api/v1/notices/{}", notice.id), Some(&admin_token), body).await?;
    if status != 200 {
        bail!("PATCH notice answered {status}: {answer}");
    }

    // Meanwhile an agent answers a customer every 250 ms; each answer's latency is taken at the fake.
    let expected = Duration::from_secs_f64(subscribers as f64 / (allowed_per_s * headroom));
    let deadline = started + expected * 3 + Duration::from_secs(60);
    let mut latencies: Vec<Duration> = Vec::new();
    let mut waiting: Option<(String, Instant)> = None;
    let mut next_answer = Instant::now() + Duration::from_millis(250);
    let mut answers = 0usize;
    let mut first_at = None;
    let mut last_at = started;
    let mut last_count = 0u64;
    let mut peak_kib = 0u64;
    loop {
        let (sent, reached, _) = fake.reach();
        let broadcast_sent = sent - before - latencies.len() as u64 - u64::from(waiting.is_some());
        if broadcast_sent > 0 && first_at.is_none() {
            first_at = Some(Instant::now());
        }
        if sent != last_count {
            last_count = sent;
            last_at = Instant::now();
        }
        peak_kib = peak_kib.max(vm_hwm_kib(pid).unwrap_or(0));
        // The customer's chat counts among the chats reached once it has an answer.
        let everyone = reached >= subscribers + usize::from(!latencies.is_empty() || waiting.is_some());
        if everyone && waiting.is_none() {
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        if let Some((text, asked)) = &waiting {
            if fake.has_answer(customer_chat, text) {
                latencies.push(asked.elapsed());
                waiting = None;
            }
        } else if Instant::now() >= next_answer && !everyone {
            answers += 1;
            let text = format!("Antwoord {answers}: we kijken naar je factuur.");
            let body = serde_json::json!({ "text": text }).to_string();
            let asked = Instant::now();
            let path = format!("/api/v1/tickets/{}/replies", ticket.id);
            let (status, answer) = http(addr, "POST", &path, Some(&agent_token), &body).await?;
            if !(200..300).contains(&status) {
                bail!("POST reply answered {status}: {answer}");
            }
            waiting = Some((text, asked));
            next_answer = asked + Duration::from_millis(250);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (sent, reached, rate_limited) = fake.reach();
    peak_kib = peak_kib.max(vm_hwm_kib(pid).unwrap_or(0));
    let _ = std::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;

    let broadcast_reached = reached.saturating_sub(usize::from(!latencies.is_empty()));
    let lost = subscribers.saturating_sub(broadcast_reached);
    let duplicates = fake.duplicates(customer_chat);
    let span = last_at.duration_since(first_at.unwrap_or(started)).as_secs_f64().max(1e-9);
    let broadcast_messages = sent - before - latencies.len() as u64;
    let achieved = (broadcast_messages.saturating_sub(1)) as f64 / span;
    let ratio = achieved / allowed_per_s;
    latencies.sort();
    let pct = |p: f64| {
        if latencies.is_empty() {
            f64::NAN
        } else {
            latencies[((latencies.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
        }
    };
    let backend = if url.starts_with("postgres") { "postgres" } else { "sqlite" };
    println!(
        "broadcast to {subscribers} {platform} subscribers on {backend} (fake and limits at {scale}x, set up in {:.1} s):",
        setup.as_secs_f64()
    );
    println!(
        "  rate {achieved:.0}/s of {allowed_per_s:.0}/s allowed = {ratio:.3} (aiming at {headroom}); {:.1} s for the broadcast",
        span
    );
    println!("  429s {rate_limited}, duplicates {duplicates}, lost {lost}");
    println!(
        "  agent answers during the broadcast: {} measured, p50 {:.1} ms, p99 {:.1} ms (at {scale}x speed)",
        latencies.len(),
        pct(0.5),
        pct(0.99)
    );
    println!("  webcare serve peak memory (VmHWM) {:.1} MiB", peak_kib as f64 / 1024.0);
    let json = serde_json::json!({
        "bench": "broadcast", "platform": platform.as_str(), "backend": backend, "subscribers": subscribers,
        "scale": scale, "allowed_per_s": allowed_per_s, "achieved_per_s": achieved, "rate_ratio": ratio,
        "rate_limited_429": rate_limited, "duplicates": duplicates, "lost": lost, "seconds": span,
        "reply_p50_ms": pct(0.5), "reply_p99_ms": pct(0.99), "replies": latencies.len(),
        "peak_memory_mib": peak_kib as f64 / 1024.0,
    });
    println!("{json}");
    if lost > 0 {
        bail!("{lost} subscribers were not reached in time; webcare's log:\n{}", read_log(&log_path));
    }
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The child's peak resident set, from `/proc/PID/status` (Linux).
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn read_log(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// One HTTP/1.1 request with `Connection: close`; the status and the body.
async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> anyhow::Result<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8_lossy(&response);
    let status = response.split(' ').nth(1).and_then(|c| c.parse().ok()).context("an HTTP status line")?;
    Ok((status, response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()))
}
