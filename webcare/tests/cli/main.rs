//! The `webcare` binary as users and deployments run it: a real process, real signals, real files and sockets.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use webcare_domain::Store as _;

/// A `webcare` command with a clean environment: nothing from the developer's shell leaks into a test.
fn webcare(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_webcare"));
    cmd.current_dir(dir).env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default()).env("NO_COLOR", "1");
    cmd
}

fn output(cmd: &mut Command) -> (Option<i32>, String, String) {
    let Output { status, stdout, stderr } = cmd.stdin(Stdio::null()).output().expect("run webcare");
    (status.code(), String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned())
}

/// A running `webcare serve`, killed if a test ends without stopping it.
struct Serving {
    child: Child,
    addr: SocketAddr,
    log: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Serving {
    /// Starts `serve` on a free port and waits until it says where it listens.
    // The child is waited for in `Drop` on every path, which this lint cannot see through the struct.
    #[allow(clippy::zombie_processes)]
    fn start(mut cmd: Command) -> Serving {
        cmd.arg("serve").env("WEBCARE_HTTP__LISTEN", "127.0.0.1:0").stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start webcare serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, log) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let line = log
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("webcare did not report its address; it said: {seen:#?}"));
            seen.push(line.clone());
            if let Some(rest) = line.split("listening on http://").nth(1) {
                let addr = rest.split('/').next().unwrap().parse().expect("an address in the log line");
                return Serving { child, addr, log, seen };
            }
        }
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(ok.success());
    }

    /// The first line logged so far or within 30 seconds that contains `text`, taken out of what was seen.
    fn logged(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(at) = self.seen.iter().position(|l| l.contains(text)) {
                return self.seen.remove(at);
            }
            let line = self.log.recv_timeout(deadline.saturating_duration_since(Instant::now()));
            self.seen.push(line.unwrap_or_else(|_| panic!("no {text:?} in the log: {:#?}", self.seen)));
        }
    }

    /// Waits for the process to exit, at most `limit`, and returns its status and everything it logged.
    fn wait(&mut self, limit: Duration) -> (ExitStatus, Vec<String>) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The reader thread ends (and closes the channel) at the end of the pipe, after the last line; on a
                // busy machine that can take a while after the exit.
                while let Ok(line) = self.log.recv_timeout(Duration::from_secs(10)) {
                    self.seen.push(line);
                }
                return (status, self.seen.clone());
            }
            assert!(Instant::now() < deadline, "webcare did not exit within {limit:?}");
            // Waiting on the log doubles as the pause between polls, and keeps what it says.
            if let Ok(line) = self.log.recv_timeout(Duration::from_millis(20)) {
                self.seen.push(line);
            }
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    request(addr, &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"))
}

/// Sends one raw HTTP/1.1 request and gives the status and the body of the answer.
fn request(addr: SocketAddr, raw: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect to webcare");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("an HTTP status line");
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    (status, body)
}

#[test]
fn serve_without_configuration_answers_health_and_stops_on_sigterm_within_5_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let mut running = Serving::start(webcare(dir.path()));
    assert!(running.addr.ip().is_loopback());
    assert!(dir.path().join("webcare.db").exists(), "the default database is ./webcare.db");
    assert_eq!(get(running.addr, "/healthz").0, 200);
    assert_eq!(get(running.addr, "/readyz"), (200, "ready\n".to_owned()));
    let (status, metrics) = get(running.addr, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics.contains("webcare_up 1") && metrics.contains("webcare_outbox_rows{state=\"pending\"} 0"));
    assert_eq!(get(running.addr, "/no-such-page").0, 404);

    let stopping = Instant::now();
    running.signal("TERM");
    let (status, log) = running.wait(Duration::from_secs(5));
    assert!(status.success(), "exit status {status}; log: {log:#?}");
    assert!(stopping.elapsed() < Duration::from_secs(5));
    let log = log.join("\n");
    assert!(log.contains("SIGTERM") && log.contains("stopped"), "{log}");
    assert!(TcpStream::connect(running.addr).is_err(), "the port is free again");
}

#[test]
fn sigint_stops_serve_too_and_json_logs_are_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = webcare(dir.path());
    cmd.arg("--log-format").arg("json");
    let mut running = Serving::start(cmd);
    running.signal("INT");
    let (status, log) = running.wait(Duration::from_secs(5));
    assert!(status.success(), "{log:#?}");
    assert!(log.len() >= 3, "{log:#?}");
    for line in &log {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.get("timestamp").is_some() && v.get("level").is_some() && v.get("message").is_some(), "{line}");
    }
    assert!(log.iter().any(|l| l.contains("SIGINT")));
}

#[test]
fn a_second_serve_on_the_same_port_names_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let first = Serving::start(webcare(dir.path()));
    let other = tempfile::tempdir().unwrap();
    let (code, _, stderr) =
        output(webcare(other.path()).arg("serve").env("WEBCARE_HTTP__LISTEN", first.addr.to_string()));
    assert_eq!(code, Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.contains(&format!("cannot listen on {}", first.addr)) && last.contains("http.listen"), "{stderr}");
    assert_eq!(get(first.addr, "/healthz").0, 200, "the first instance is unharmed");
}

#[test]
fn check_config_names_an_unknown_key_and_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("webcare.toml");
    std::fs::write(&file, "[database]\nurl = \"sqlite://x.db\"\n[http]\nlisen = \"127.0.0.1:9\"\n").unwrap();
    // --config goes before or after the subcommand.
    for args in [["--config", "webcare.toml", "check-config"], ["check-config", "--config", "webcare.toml"]] {
        let (code, _, stderr) = output(webcare(dir.path()).args(args));
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains("webcare.toml: key `http.lisen`: unknown key"), "{stderr}");
    }
    std::fs::write(&file, "[http]\nlisten = \"127.0.0.1:9\"\n").unwrap();
    let (code, stdout, _) = output(webcare(dir.path()).env("WEBCARE_CONFIG", "webcare.toml").arg("check-config"));
    assert_eq!(code, Some(0));
    assert!(stdout.contains("configuration is valid (webcare.toml)"), "{stdout}");
    let (code, _, stderr) =
        output(webcare(dir.path()).args(["check-config"]).env("WEBCARE_DATABASE__MAX_CONNECTIONS", "none"));
    assert_eq!(code, Some(2));
    assert!(stderr.contains("WEBCARE_DATABASE__MAX_CONNECTIONS"), "{stderr}");
}

#[test]
fn print_config_shows_the_defaults_and_masks_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, _) = output(
        webcare(dir.path())
            .arg("print-config")
            .env("WEBCARE_TELEGRAM__TOKEN", "123456:very-secret-token")
            .env("WEBCARE_DISCORD__TOKEN", "discord-secret"),
    );
    assert_eq!(code, Some(0));
    assert!(stdout.contains("url = \"sqlite://webcare.db\"") && stdout.contains("listen = \"127.0.0.1:8080\""));
    assert!(!stdout.contains("very-secret") && !stdout.contains("discord-secret"), "{stdout}");
    assert!(stdout.contains("token = \"********\""), "{stdout}");
}

#[test]
fn agent_add_prints_a_token_that_is_stored_only_as_a_hash() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = webcare(dir.path())
        .args(["agent", "add", "--name", "ria", "--role", "admin", "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"correct horse battery\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = stdout.lines().last().unwrap().to_owned();
    assert!(token.starts_with("wct_") && token.len() == 68, "{stdout}");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("webcare.db").display());
        let db = webcare_storage::Db::open(&url, &Default::default()).await.unwrap();
        let agent = db.agent_by_token_hash(&webcare_web::auth::hash_api_token(&token)).await.unwrap().unwrap();
        assert_eq!((agent.name.as_str(), agent.role), ("ria", webcare_domain::Role::Admin));
        assert!(db.agent_by_token_hash(&token).await.unwrap().is_none(), "the token itself is not stored");
        let phc = agent.password_hash.unwrap();
        assert!(webcare_web::auth::verify_password("correct horse battery", &phc));
        db.close().await;
    });

    let (code, _, stderr) = output(webcare(dir.path()).args(["agent", "add", "--name", "ria", "--role", "agent"]));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("an agent named `ria` exists already"), "{stderr}");
    let (code, stdout, _) = output(webcare(dir.path()).args(["agent", "add", "--name", "sam", "--role", "agent"]));
    assert_eq!(code, Some(0));
    assert_ne!(stdout.lines().last().unwrap(), token);
}

/// Runs `webcare` with `stdin` as standard input and gives the exit code, standard output and standard error.
fn output_with_stdin(cmd: &mut Command, stdin: &str) -> (Option<i32>, String, String) {
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
    (status.code(), String::from_utf8_lossy(&stdout).into_owned(), String::from_utf8_lossy(&stderr).into_owned())
}

/// The database of a test's directory, opened as a second process would (the command line's changes are there).
fn open_sqlite(rt: &tokio::runtime::Runtime, dir: &Path) -> webcare_storage::Db {
    let url = format!("sqlite://{}", dir.join("webcare.db").display());
    rt.block_on(webcare_storage::Db::open(&url, &Default::default())).unwrap()
}

/// An agent created with `agent add`, with the API token it printed.
fn agent_add(dir: &Path, name: &str, role: &str) -> String {
    let (code, stdout, stderr) = output(webcare(dir).args(["agent", "add", "--name", name, "--role", role]));
    assert_eq!(code, Some(0), "{stderr}");
    stdout.lines().last().unwrap().to_owned()
}

#[test]
fn agents_are_listed_and_changed_from_the_command_line_and_the_last_admin_stays() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ria = agent_add(dir.path(), "ria", "admin");
    agent_add(dir.path(), "sam", "agent");
    let (code, list, stderr) = output(webcare(dir.path()).args(["agent", "list"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(list, "1 ria · admin · active\n2 sam · agent · active\n");

    // Ria is the only admin: she can be neither demoted nor deactivated.
    for args in [["agent", "role", "ria", "agent"].as_slice(), &["agent", "deactivate", "ria"]] {
        let (code, _, stderr) = output(webcare(dir.path()).args(args));
        assert_eq!(code, Some(1), "{args:?}");
        assert!(stderr.contains("`ria` is the last active admin: make another agent admin first"), "{stderr}");
    }
    let (code, said, stderr) = output(webcare(dir.path()).args(["agent", "role", "sam", "ADMIN"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(said.starts_with("2 `sam` is now admin"), "{said}");
    let (code, said, stderr) = output(webcare(dir.path()).args(["agent", "deactivate", "ria"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(said.contains("`ria` is deactivated"), "{said}");
    let db = open_sqlite(&rt, dir.path());
    let hash = webcare_web::auth::hash_api_token(&ria);
    assert!(rt.block_on(db.agent_by_token_hash(&hash)).unwrap().is_none(), "a deactivated agent's token is refused");
    rt.block_on(db.close());
    let (code, _, stderr) = output(webcare(dir.path()).args(["agent", "activate", "ria"]));
    assert_eq!(code, Some(0), "{stderr}");

    // A forgotten password is set again from standard input, never from the command line; a new token works.
    let (code, said, stderr) = output_with_stdin(
        webcare(dir.path()).args(["agent", "password", "sam", "--password-stdin"]),
        "new horse battery\n",
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(said.contains("`sam` has a new console password"), "{said}");
    let (code, _, stderr) = output_with_stdin(webcare(dir.path()).args(["agent", "password", "sam"]), "x\n");
    assert_eq!(code, Some(2), "clap refuses it without --password-stdin: {stderr}");
    let (code, _, stderr) =
        output_with_stdin(webcare(dir.path()).args(["agent", "password", "sam", "--password-stdin"]), "short\n");
    assert_eq!(code, Some(1));
    assert!(stderr.contains("must have 8 to 1024 characters"), "{stderr}");
    let (code, said, stderr) = output(webcare(dir.path()).args(["agent", "token", "sam"]));
    assert_eq!(code, Some(0), "{stderr}");
    let token = said.lines().last().unwrap();
    let db = open_sqlite(&rt, dir.path());
    let sam = rt.block_on(db.agent_by_token_hash(&webcare_web::auth::hash_api_token(token))).unwrap().unwrap();
    assert_eq!((sam.name.as_str(), sam.role, sam.active), ("sam", webcare_domain::Role::Admin, true));
    assert!(webcare_web::auth::verify_password("new horse battery", sam.password_hash.as_deref().unwrap()));
    assert!(rt.block_on(db.agent_by_token_hash(&hash)).unwrap().is_some(), "ria works again");
    rt.block_on(db.close());

    let (code, _, stderr) = output(webcare(dir.path()).args(["agent", "role", "nobody", "admin"]));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no agent is named `nobody` (`webcare agent list` shows them)"), "{stderr}");
    let (code, _, stderr) = output(webcare(dir.path()).args(["agent", "role", "sam", "boss"]));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("boss"), "{stderr}");
}

/// Notices from the command line keep the console's rules: only admins, and under four eyes another admin approves.
#[test]
fn notices_are_written_and_approved_from_the_command_line_under_four_eyes() {
    let dir = tempfile::tempdir().unwrap();
    agent_add(dir.path(), "ria", "admin");
    agent_add(dir.path(), "bas", "admin");
    agent_add(dir.path(), "sam", "agent");
    let notice = |args: &[&str]| {
        let mut cmd = webcare(dir.path());
        cmd.env("WEBCARE_NOTICES__FOUR_EYES", "true").arg("notice").args(args);
        output(&mut cmd)
    };
    let create = [
        "create",
        "--as",
        "ria",
        "--title",
        "Storing Utrecht",
        "--text",
        "We werken aan een internetstoring in Utrecht.",
        "--translation",
        "en=We are working on an internet outage in Utrecht.",
        "--service",
        "internet",
        "--region",
        "Utrecht",
        "--region",
        "Zeist",
    ];
    let (code, _, stderr) = notice(&[&["create", "--as", "sam"], &create[3..]].concat());
    assert_eq!(code, Some(1));
    assert!(stderr.contains("only admins manage notices"), "{stderr}");
    let (code, said, stderr) = notice(&create);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(said.starts_with("notice 1 created (version 1) as a draft"), "{said}");
    let (code, _, stderr) = notice(&["approve", "1", "--as", "ria"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("approved by another admin than its author"), "{stderr}");
    let (code, said, stderr) = notice(&["approve", "1", "--as", "bas"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(said.starts_with("notice 1 approved (version 2, investigating): 0 subscribers get it"), "{said}");
    let (code, list, _) = notice(&["list"]);
    assert_eq!(code, Some(0));
    assert_eq!(list, "1 Storing Utrecht · investigating · internet · Utrecht, Zeist · version 2\n");

    // Once approved, updates go out at once, as in the console; a scope change is a version too.
    let (code, said, stderr) = notice(&["update", "1", "--as", "ria", "--state", "identified", "--nationwide"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(said.starts_with("notice 1 updated (version 3, identified): 0 subscribers get it"), "{said}");
    let (code, said, _) = notice(&["update", "1", "--as", "ria", "--service", "tv", "--service", "internet"]);
    assert_eq!(code, Some(0));
    assert!(said.starts_with("notice 1 updated (version 4, identified)"), "{said}");
    let (code, show, _) = notice(&["show", "1"]);
    assert_eq!(code, Some(0));
    assert!(show.starts_with("1 Storing Utrecht · identified · tv, internet · nationwide · version 4\n"), "{show}");
    assert!(show.contains("text (en): We are working on an internet outage in Utrecht."), "{show}");
    assert!(show.contains("version 1 · investigating · "), "{show}");
    assert!(show.contains(" · by ria\n"), "{show}");
    assert!(show.contains("\nversion 2 · investigating · ") && show.contains(" · approved by bas\n"), "{show}");
    assert!(show.contains("broadcast of version 4: 0 subscribers"), "{show}");
    // New words for a published notice wait for the second admin too.
    let (code, said, stderr) = notice(&["update", "1", "--as", "ria", "--text", "Monteurs zijn onderweg."]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(said.starts_with("notice 1's new text awaits another admin's approval"), "{said}");
    let (_, show, _) = notice(&["show", "1"]);
    assert!(show.contains("version 4\n") && show.contains("awaiting approval, by ria at "), "{show}");
    assert!(show.contains(": Monteurs zijn onderweg.\n"), "{show}");
    let (code, said, _) = notice(&["approve", "1", "--as", "bas"]);
    assert_eq!(code, Some(0));
    assert!(said.starts_with("notice 1 approved (version 5, identified)"), "{said}");

    // Bad input is named, and nothing changes.
    for (args, says) in [
        (vec!["update", "1", "--as", "ria"], "nothing to change"),
        (vec!["update", "9", "--as", "ria", "--state", "resolved"], "notice 9 not found"),
        (vec!["show", "9"], "notice 9 not found"),
        (vec!["create", "--as", "ria", "--title", " ", "--text", "x"], "invalid title: 1 to 200 characters"),
    ] {
        let (code, _, stderr) = notice(&args);
        assert_eq!(code, Some(1), "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    for (args, says) in [
        (vec!["create", "--as", "ria", "--title", "t", "--text", "x", "--service", "gas"], "gas"),
        (vec!["create", "--as", "ria", "--title", "t", "--text", "x", "--state", "fixed"], "fixed"),
        (vec!["create", "--as", "ria", "--title", "t", "--text", "x", "--translation", "english"], "LANG=TEXT"),
    ] {
        let (code, _, stderr) = notice(&args);
        assert_eq!(code, Some(2), "{args:?}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    let (_, show, _) = notice(&["show", "1"]);
    assert!(show.contains("version 5\n") && !show.contains("version 6"), "{show}");
}

#[test]
fn migrate_creates_the_database_and_is_repeatable() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let (code, stdout, stderr) = output(webcare(dir.path()).arg("migrate"));
        assert_eq!(code, Some(0), "{stderr}");
        assert!(stdout.contains("migrations applied to sqlite://webcare.db"), "{stdout}");
    }
    assert!(dir.path().join("webcare.db").exists());
}

#[test]
fn a_foreign_database_file_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let content = b"SQLite format 3\0 but really just some bytes".repeat(100);
    std::fs::write(dir.path().join("webcare.db"), &content).unwrap();
    let (code, _, stderr) = output(webcare(dir.path()).arg("serve").env("WEBCARE_HTTP__LISTEN", "127.0.0.1:0"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("webcare.db is not a webcare database"), "{stderr}");
    assert_eq!(std::fs::read(dir.path().join("webcare.db")).unwrap(), content);
}

#[test]
fn an_unwritable_database_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) =
        output(webcare(dir.path()).arg("migrate").env("WEBCARE_DATABASE__URL", "sqlite:///proc/webcare.db"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot create the database file /proc/webcare.db"), "{stderr}");
}

#[test]
fn an_unreachable_database_is_retried_then_reported() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let started = Instant::now();
    let (code, _, stderr) = output(
        webcare(dir.path())
            .arg("serve")
            .env("WEBCARE_DATABASE__URL", format!("postgres://webcare:hunter2@127.0.0.1:{port}/webcare"))
            .env("WEBCARE_DATABASE__CONNECT_RETRY_SECS", "1"),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(stderr.contains("database unreachable, retrying"), "it retried: {stderr}");
    assert!(stderr.lines().last().unwrap().contains("cannot reach the database"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

const MESSAGES: &str = "\
id,created_at,author_id,account,text,intent,service,cluster,pii,confidence
1,2026-03-01T10:00:00Z,a,acme,Storing in Utrecht? Geen internet sinds 10 uur,disruption,internet,c1,no,high
2,2026-03-01T10:02:00Z,b,acme,Utrecht internet ligt eruit,disruption,internet,c1,no,high
3,2026-03-01T10:05:00Z,c,acme,Mijn factuur is te hoog,case,unknown,-,no,high
4,2026-03-01T10:06:00Z,d,acme,Bedankt voor de snelle hulp!,other,,,no,high
5,2026-03-01T10:07:00Z,e,acme,Mijn IBAN is NL91ABNA0417164300 graag terugstorten,case,unknown,-,yes,high
";

#[test]
fn replay_writes_one_decision_per_message_and_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("messages.csv"), MESSAGES).unwrap();
    let (code, stdout, stderr) = output(webcare(dir.path()).args(["replay", "messages.csv"]));
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let decisions: Vec<_> = lines.iter().filter(|l| l.get("action").is_some()).collect();
    assert_eq!(decisions.len(), 5, "{stdout}");
    assert_eq!(decisions[0]["intent"], "outage");
    assert_eq!(decisions[0]["action"], "hold_and_subscribe");
    assert_eq!(decisions[0]["cluster"], decisions[1]["cluster"], "one cluster for one outage");
    assert_eq!(decisions[2]["action"], "ticket");
    assert!(decisions[4]["pii"].as_array().unwrap().iter().any(|k| k == "iban"), "{}", decisions[4]);
    for d in &decisions {
        for field in ["id", "intent", "category", "service", "region", "pii", "cluster", "notice", "action", "reasons"]
        {
            assert!(d.get(field).is_some(), "{field} missing in {d}");
        }
    }
    assert!(stderr.lines().last().unwrap().contains("replayed 5 messages"), "{stderr}");

    let (code, _, _) = output(webcare(dir.path()).args(["replay", "messages.csv", "--out", "out.jsonl"]));
    assert_eq!(code, Some(0));
    assert_eq!(std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap(), stdout);
    let (code, _, stderr) = output(webcare(dir.path()).args(["replay", "missing.csv"]));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("missing.csv"), "{stderr}");
}

#[test]
fn a_belgian_operator_reads_postcodes_and_shared_place_names_as_belgian() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("be.csv"),
        "id,created_at,text\n1,2026-03-02T08:00:00Z,Internet weg in 9000\n2,2026-03-02T08:01:00Z,Storing in Deurne?\n",
    )
    .unwrap();
    let regions = |countries: Option<&str>| {
        let mut cmd = webcare(dir.path());
        if let Some(c) = countries {
            cmd.env("WEBCARE_BRIDGE__COUNTRIES", c);
        }
        let (code, stdout, stderr) = output(cmd.args(["replay", "be.csv"]));
        assert_eq!(code, Some(0), "{stderr}");
        stdout
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|l| l.get("action").is_some())
            .map(|l| l["region"].as_str().unwrap_or("-").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(regions(None), ["Leeuwarden (9000)", "Deurne"], "the Netherlands first by default");
    assert_eq!(regions(Some("be,nl")), ["Gent (9000)", "Deurne (BE)"]);
    let (code, _, stderr) =
        output(webcare(dir.path()).env("WEBCARE_BRIDGE__COUNTRIES", "be,de").args(["replay", "be.csv"]));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("bridge.countries"), "{stderr}");
}

#[test]
fn eval_prints_quality_figures_and_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("labelled.csv"), MESSAGES).unwrap();
    let (code, stdout, stderr) = output(webcare(dir.path()).args(["eval", "labelled.csv"]));
    assert_eq!(code, Some(0), "{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(report.to_string().contains("outage"), "{report}");
    assert!(stdout.to_lowercase().contains("f1"), "{stdout}");
}

#[test]
fn benchmarks_end_with_a_json_line() {
    let _one_at_a_time = heavy();
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = output(webcare(dir.path()).args(["bench", "classify", "--seconds", "0.2"]));
    assert_eq!(code, Some(0), "{stderr}");
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(last["classify"]["messages_per_sec"].as_f64().unwrap() > 0.0, "{last}");
    let (code, stdout, stderr) = output(webcare(dir.path()).args(["bench", "ingest", "--messages", "40"]));
    assert_eq!(code, Some(0), "{stderr}");
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!((last["bench"].as_str(), last["messages"].as_u64()), (Some("ingest"), Some(40)));
    assert!(last["p99_ms"].as_f64().unwrap() >= last["p50_ms"].as_f64().unwrap());
    for platform in ["telegram", "discord"] {
        let (code, stdout, stderr) = output(webcare(dir.path()).args([
            "bench",
            "broadcast",
            "--subscribers",
            "300",
            "--scale",
            "10",
            "--platform",
            platform,
        ]));
        assert_eq!(code, Some(0), "{stdout}{stderr}");
        let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        assert_eq!((last["bench"].as_str(), last["platform"].as_str()), (Some("broadcast"), Some(platform)));
        assert_eq!((last["lost"].as_u64(), last["duplicates"].as_u64()), (Some(0), Some(0)), "{last}");
        // A run this short says little about the rate (one 429 holds the bot for a second); the figures come from
        // the long runs in the README.
        assert!(last["rate_ratio"].as_f64().unwrap() > 0.1, "{last}");
        assert!(last["peak_memory_mib"].as_f64().unwrap() > 1.0, "{last}");
    }
}

#[test]
fn broadcast_status_reports_progress_or_names_a_missing_notice() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = output(webcare(dir.path()).args(["broadcast", "status", "7"]));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("notice 7 not found"), "{stderr}");

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("webcare.db").display());
        let db = webcare_storage::Db::open(&url, &Default::default()).await.unwrap();
        db.create_notice(webcare_domain::NewNotice::published(
            "Storing",
            "We werken eraan.",
            vec![],
            &[],
            webcare_domain::NoticeState::Investigating,
            chrono::Utc::now(),
        ))
        .await
        .unwrap();
        db.close().await;
    });
    let (code, stdout, stderr) = output(webcare(dir.path()).args(["broadcast", "status", "1", "--follow"]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("notice 1 v1: 0 subscribers, sent 0, failed 0, pending 0"), "{stdout}");
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["version"], 1);
}

/// The fake Telegram Bot API on a runtime of its own, alive while the test runs the binary against it.
fn fake_telegram() -> (tokio::runtime::Runtime, webcare_fake_telegram::FakeTelegram) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let fake = rt.block_on(webcare_fake_telegram::FakeTelegram::start());
    (rt, fake)
}

#[test]
fn serve_runs_the_telegram_bot_when_its_token_is_set() {
    let (rt, fake) = fake_telegram();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = webcare(dir.path());
    cmd.env("WEBCARE_TELEGRAM__TOKEN", fake.token()).env("WEBCARE_TELEGRAM__API_URL", fake.url());
    let mut running = Serving::start(cmd);
    let anna = fake.create_user(webcare_fake_telegram::NewUser::named("Anna"));
    let chat = fake.private_chat(anna);
    fake.send_text(anna, chat, "Storing in Utrecht? Geen internet sinds 10 uur");
    let answered = rt.block_on(fake.wait_until(Duration::from_secs(30), || !fake.bot_messages(chat).is_empty()));
    assert!(answered, "the bot answered the outage question");
    assert!(fake.bot_messages(chat)[0].text.starts_with("Bedankt voor je melding"), "{:?}", fake.bot_messages(chat));
    running.signal("TERM");
    let (status, log) = running.wait(Duration::from_secs(10));
    assert!(status.success(), "{log:#?}");
    assert_eq!(fake.bot_messages(chat).len(), 1, "answered once");
}

/// A webhook receiver on 127.0.0.1: takes each POST, answers 200, and hands its body over.
fn webhook_receiver() -> (SocketAddr, mpsc::Receiver<serde_json::Value>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let _ = reader.get_mut().write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            if tx.send(serde_json::from_slice(&body).unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    (addr, rx)
}

/// Six customers ask the bot about the same outage in private chats: enough for a spike alert. Returns their chats.
fn six_customers_report_an_outage_in_eindhoven(
    fake: &webcare_fake_telegram::FakeTelegram,
) -> Vec<webcare_fake_telegram::ChatId> {
    let mut chats = Vec::new();
    for (i, text) in [
        "Storing in Eindhoven? Geen internet",
        "Eindhoven internet ligt eruit",
        "Geen internet in Eindhoven sinds vanochtend",
        "Is er een internetstoring in Eindhoven?",
        "Eindhoven: internet werkt niet, storing?",
        "Ook geen internet hier in Eindhoven",
    ]
    .iter()
    .enumerate()
    {
        let user = fake.create_user(webcare_fake_telegram::NewUser::named(&format!("klant {i}")));
        let chat = fake.private_chat(user);
        fake.send_text(user, chat, text);
        chats.push(chat);
    }
    chats
}

#[test]
fn a_spike_alert_reaches_its_services_webhook_and_the_log_keeps_the_url_secret() {
    let (_rt, fake) = fake_telegram();
    let (hook, posts) = webhook_receiver();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = webcare(dir.path());
    cmd.env("WEBCARE_TELEGRAM__TOKEN", fake.token())
        .env("WEBCARE_TELEGRAM__API_URL", fake.url())
        .env("WEBCARE_ALERTS__WEBHOOKS__INTERNET", format!("http://{hook}/services/T0/B0/s3cr3t"));
    let mut running = Serving::start(cmd);
    six_customers_report_an_outage_in_eindhoven(&fake);
    let post = posts.recv_timeout(Duration::from_secs(60)).expect("the network team's webhook got the spike alert");
    assert_eq!(post["service"], "internet", "{post}");
    assert!(post["count"].as_i64().unwrap() >= 5, "{post}");
    assert!(post["text"].as_str().unwrap().starts_with("Spike alert:"), "{post}");
    running.signal("TERM");
    let (status, log) = running.wait(Duration::from_secs(10));
    assert!(status.success(), "{log:#?}");
    let log = log.join("\n");
    assert!(log.contains("spike alert posted"), "{log}");
    assert!(log.contains(&format!("http://{hook}/********")), "the webhook is named by its host: {log}");
    assert!(!log.contains("s3cr3t"), "the URL's secret never reaches the log: {log}");
    assert!(posts.recv_timeout(Duration::from_millis(100)).is_err(), "posted once");
}

/// Spike alerts reach the webcare team's Telegram group (`telegram.staff_chats`) once, through the real bot; what
/// the team writes there, even to the bot, is never taken for a customer's message; and an admin who linked their
/// Telegram account publishes a notice from the alert with `/publish`, which reaches every waiting customer.
#[test]
fn a_spike_alert_reaches_the_staff_group_and_the_staff_are_no_customers() {
    let (rt, fake) = fake_telegram();
    let staff = fake.create_group("webcare team", webcare_fake_telegram::BotMembership::Member);
    let dir = tempfile::tempdir().unwrap();
    let (code, token, stderr) = output(webcare(dir.path()).args(["agent", "add", "--name", "ria", "--role", "admin"]));
    assert_eq!(code, Some(0), "{stderr}");
    let token = token.lines().last().unwrap().to_owned();
    let mut cmd = webcare(dir.path());
    cmd.env("WEBCARE_TELEGRAM__TOKEN", fake.token())
        .env("WEBCARE_TELEGRAM__API_URL", fake.url())
        .env("WEBCARE_TELEGRAM__STAFF_CHATS", staff.0.to_string());
    let mut running = Serving::start(cmd);
    let customers = six_customers_report_an_outage_in_eindhoven(&fake);
    let alerted = rt.block_on(fake.wait_until(Duration::from_secs(60), || !fake.bot_messages(staff).is_empty()));
    assert!(alerted, "the staff group got the spike alert");
    let alert = &fake.bot_messages(staff)[0].text;
    assert!(alert.starts_with("Spike alert:") && alert.contains("internet trouble in Eindhoven"), "{alert}");
    // Typing `/` in the staff group shows the desk's commands, not the customers'.
    let menu: Vec<String> = fake.commands(&format!("chat:{}", staff.0), "").into_iter().map(|(c, _)| c).collect();
    assert!(menu.contains(&"publish".to_owned()) && menu.contains(&"claim".to_owned()), "{menu:?}");
    assert!(!menu.contains(&"stop".to_owned()), "{menu:?}");
    assert!(alert.contains("Draft notice:"), "{alert}");

    // A team member answers the bot in the group; then a customer asks. The customer is answered, the team member
    // is not, and gets no ticket.
    let ria = fake.create_user(webcare_fake_telegram::NewUser::named("Ria"));
    fake.send_text(
        ria,
        staff,
        &format!("@{} ik pak deze storing op, mijn factuur klopt ook niet", fake.bot_username()),
    );
    let later = fake.create_user(webcare_fake_telegram::NewUser::named("klant 7"));
    let chat = fake.private_chat(later);
    fake.send_text(later, chat, "Storing in Utrecht? Geen tv sinds vanmiddag");
    assert!(rt.block_on(fake.wait_until(Duration::from_secs(30), || !fake.bot_messages(chat).is_empty())));
    assert_eq!(
        fake.bot_messages(staff).len(),
        1,
        "one alert, once, and no answer to the team: {:?}",
        fake.bot_messages(staff)
    );

    // Ria links her Telegram account with a code from the API, and publishes a notice from the alert in the group.
    let (status, body) = request(
        running.addr,
        &format!(
            "POST /api/v1/me/chat-link HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 201, "{body}");
    let link: serde_json::Value = serde_json::from_str(&body).unwrap();
    let alert_id = alert.split("webcare alert ").nth(1).and_then(|r| r.split('.').next()).expect("the alert's id");
    let staff_said =
        |n: usize| rt.block_on(fake.wait_until(Duration::from_secs(30), || fake.bot_messages(staff).len() >= n));
    fake.send_text(ria, staff, &format!("/publish {alert_id}"));
    assert!(staff_said(2));
    assert!(fake.bot_messages(staff)[1].text.starts_with("I do not know you yet"), "{:?}", fake.bot_messages(staff));
    // She links in a private chat with the bot, so the code is not shown in the group.
    let private = fake.private_chat(ria);
    fake.send_text(ria, private, link["command"].as_str().unwrap());
    let linked = rt.block_on(fake.wait_until(Duration::from_secs(30), || !fake.bot_messages(private).is_empty()));
    assert!(linked, "the private chat got an answer");
    assert!(fake.bot_messages(private)[0].text.contains("act as ria (admin)"), "{:?}", fake.bot_messages(private));
    fake.send_text(ria, staff, &format!("/publish@{} {alert_id}", fake.bot_username()));
    assert!(staff_said(3));
    let published = &fake.bot_messages(staff)[2].text;
    assert!(published.starts_with(&format!("Notice 1 published from alert {alert_id}: 6 customers")), "{published}");
    for chat in &customers {
        let noticed = rt.block_on(fake.wait_until(Duration::from_secs(30), || {
            fake.bot_messages(*chat)
                .iter()
                .any(|m| m.text.contains("Er is een storing in internet in de omgeving Eindhoven"))
        }));
        assert!(noticed, "the customer got the notice: {:?}", fake.bot_messages(*chat));
    }
    running.signal("TERM");
    let (status, log) = running.wait(Duration::from_secs(10));
    assert!(status.success(), "{log:#?}");
    // No ticket: the team member's message, which reads like a billing case, was never taken for a customer's.
    let db = rt
        .block_on(webcare_storage::Db::open(
            &format!("sqlite://{}", dir.path().join("webcare.db").display()),
            &webcare_storage::OpenOptions { migrate: false, ..webcare_storage::OpenOptions::default() },
        ))
        .unwrap();
    let tickets = rt.block_on(webcare_domain::Store::tickets(&db, &[])).unwrap();
    assert!(tickets.is_empty(), "{tickets:?}");
    // Nor was it stored: the update was dropped before the intake (the customer's, sent after it, was taken).
    let stored = rt.block_on(webcare_domain::Store::inbound_after(&db, webcare_domain::InboundId(0), 100)).unwrap();
    assert_eq!(stored.len(), 7, "the seven customers' questions; not the team's link in a private chat");
    assert!(!stored.iter().any(|m| m.text.contains("ik pak deze storing op")), "{stored:?}");
    rt.block_on(db.close());
}

/// An admin at a terminal beside a running `webcare serve`: lists the spike alerts, publishes a notice from one
/// (every waiting customer gets it once), writes a notice by hand (a later question is answered from it at once, and
/// the customer already waiting in a cluster it covers gets it on the decider's next clock tick) and resolves it.
#[test]
fn an_admin_at_a_terminal_answers_a_spike_with_one_broadcast_while_serve_runs() {
    let (rt, fake) = fake_telegram();
    let dir = tempfile::tempdir().unwrap();
    agent_add(dir.path(), "ria", "admin");
    let mut cmd = webcare(dir.path());
    cmd.env("WEBCARE_TELEGRAM__TOKEN", fake.token()).env("WEBCARE_TELEGRAM__API_URL", fake.url());
    let mut running = Serving::start(cmd);
    let cli = |args: &[&str]| {
        let (code, said, stderr) = output(webcare(dir.path()).args(args));
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        said
    };
    let said_in = |chat: webcare_fake_telegram::ChatId, text: &str| {
        rt.block_on(
            fake.wait_until(Duration::from_secs(45), || fake.bot_messages(chat).iter().any(|m| m.text.contains(text))),
        )
    };

    // A customer in Utrecht waits in a cluster of their own; six in Eindhoven raise a spike alert.
    let waiting = fake.create_user(webcare_fake_telegram::NewUser::named("wachtende"));
    let waiting_chat = fake.private_chat(waiting);
    fake.send_text(waiting, waiting_chat, "Storing in Utrecht? Geen tv sinds vanmiddag");
    let customers = six_customers_report_an_outage_in_eindhoven(&fake);
    let alerted =
        poll_until(Duration::from_secs(60), || cli(&["alert", "list"]).starts_with("1 internet in Eindhoven"));
    assert!(alerted, "{}", cli(&["alert", "list"]));
    let list = cli(&["alert", "list"]);
    assert!(list.contains("waiting: `webcare alert publish 1 --as ADMIN`"), "{list}");
    assert!(list.contains("\n    > Storing in Eindhoven? Geen internet\n"), "with samples: {list}");
    for chat in &customers {
        assert!(said_in(*chat, "Bedankt voor je melding"), "the holding answer: {:?}", fake.bot_messages(*chat));
    }

    let said = cli(&["alert", "publish", "1", "--as", "ria"]);
    assert!(said.starts_with("notice 1 published from alert 1 (version 1, investigating): 6 subscribers"), "{said}");
    for chat in &customers {
        assert!(
            said_in(*chat, "Er is een storing in internet in de omgeving Eindhoven"),
            "{:?}",
            fake.bot_messages(*chat)
        );
    }
    let (code, _, stderr) = output(webcare(dir.path()).args(["alert", "publish", "1", "--as", "ria"]));
    assert_eq!(code, Some(1), "one outage, one notice");
    assert!(stderr.contains("already follow notice 1: update that notice instead"), "{stderr}");
    assert!(cli(&["alert", "list"]).contains("answered by notice 1"));

    // A notice by hand for the TV outage in Utrecht: a new question is answered from it at once, and the customer
    // who was waiting gets it too.
    let said = cli(&[
        "notice",
        "create",
        "--as",
        "ria",
        "--title",
        "Storing tv Utrecht",
        "--text",
        "We werken aan een tv-storing in Utrecht.",
        "--service",
        "tv",
        "--region",
        "Utrecht",
    ]);
    assert!(said.starts_with("notice 2 created (version 1, investigating): 0 subscribers get it now"), "{said}");
    // Only the running serve knows which waiting customers the notice covers: the admin sees the open clusters of
    // its services, not a count that leaves them out.
    assert!(said.contains("open for its services: cluster 1 (tv, Utrecht, 1 customer);"), "{said}");
    let later = fake.create_user(webcare_fake_telegram::NewUser::named("later"));
    let later_chat = fake.private_chat(later);
    fake.send_text(later, later_chat, "Is er een tv storing in Utrecht?");
    assert!(said_in(later_chat, "We werken aan een tv-storing in Utrecht."), "{:?}", fake.bot_messages(later_chat));
    assert!(said_in(waiting_chat, "We werken aan een tv-storing in Utrecht."), "{:?}", fake.bot_messages(waiting_chat));

    let said = cli(&[
        "notice",
        "update",
        "1",
        "--as",
        "ria",
        "--state",
        "resolved",
        "--text",
        "Het internet in Eindhoven werkt weer.",
    ]);
    assert!(said.starts_with("notice 1 updated (version 2, resolved): 6 subscribers"), "{said}");
    for chat in &customers {
        assert!(said_in(*chat, "Het internet in Eindhoven werkt weer."), "{:?}", fake.bot_messages(*chat));
    }
    assert_eq!(
        cli(&["notice", "list"]).lines().collect::<Vec<_>>(),
        ["2 Storing tv Utrecht · investigating · tv · Utrecht · version 1"]
    );
    assert!(
        cli(&["notice", "show", "1"]).contains("broadcast of version 2: 6 subscribers, sent 6, failed 0, pending 0")
    );
    // The reports from the terminal: eight outage questions today, one spike.
    let report = cli(&["report", "--days", "2"]);
    assert!(report.contains("(2 days, Europe/Amsterdam): 8 messages, 1 spike alerts"), "{report}");
    assert!(report.contains("outage 8") && report.contains("Eindhoven 6 · Utrecht 2"), "{report}");
    assert!(report.contains("spike alert 1: internet in Eindhoven"), "{report}");
    let json: serde_json::Value = serde_json::from_str(&cli(&["report", "--json"])).unwrap();
    assert_eq!((json["messages"].as_u64(), json["days"].as_array().map(Vec::len)), (Some(8), Some(30)));
    let (code, _, stderr) = output(webcare(dir.path()).args(["report", "--days", "0"]));
    assert_eq!(code, Some(2), "{stderr}");
    running.signal("TERM");
    let (status, log) = running.wait(Duration::from_secs(10));
    assert!(status.success(), "{log:#?}");
    for chat in customers.iter().chain([&waiting_chat, &later_chat]) {
        let texts: Vec<String> = fake.bot_messages(*chat).into_iter().map(|m| m.text).collect();
        let noticed = texts.iter().filter(|t| t.contains("Eindhoven") || t.contains("tv-storing")).count();
        assert!(noticed <= 2, "each version once: {texts:?}");
    }
}

/// An admin changes a lexicon and applies it without a restart, with SIGHUP or with `webcare reload` (through the
/// database, for every instance): later messages are classified with it. A file that does not load is named in the
/// log, and the running data stays; `webcare reload` refuses it before asking anyone.
#[test]
fn sighup_or_webcare_reload_reloads_the_bridge_data_and_a_broken_file_changes_nothing() {
    let (rt, fake) = fake_telegram();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lexicons");
    std::fs::create_dir(&data).unwrap();
    let shipped = include_str!("../../../bridge/data/lexicon-nl.toml");
    let lexicon = data.join("lexicon-nl.toml");
    std::fs::write(&lexicon, shipped).unwrap();
    let mut cmd = webcare(dir.path());
    cmd.env("WEBCARE_TELEGRAM__TOKEN", fake.token())
        .env("WEBCARE_TELEGRAM__API_URL", fake.url())
        .env("WEBCARE_BRIDGE__DATA_DIR", &data);
    let mut running = Serving::start(cmd);
    // The log line that says `text`, taken out of what was seen, so that a later wait finds a later one.
    let logged = |running: &mut Serving, text: &str| running.logged(text);
    // A customer writes a word the lexicon does not know, then a plain outage question, answered after the first
    // was decided.
    // The bot's first answer to what a new customer writes. Messages are decided and answered in order, so an
    // answer to the first text would come before one to the second.
    let ask = |name: &str, texts: &[&str]| {
        let user = fake.create_user(webcare_fake_telegram::NewUser::named(name));
        let chat = fake.private_chat(user);
        for text in texts {
            fake.send_text(user, chat, text);
        }
        let answered = rt.block_on(fake.wait_until(Duration::from_secs(30), || !fake.bot_messages(chat).is_empty()));
        assert!(answered, "{name} got no answer");
        fake.bot_messages(chat).remove(0).text
    };
    let before = ask("een", &["Zwolle: blorp?", "Outage in Utrecht? No internet"]);
    assert!(before.starts_with("Thanks for letting us know"), "the first is not answered, the second is: {before}");

    std::fs::write(&lexicon, shipped.replacen("\"uitval\", ", "\"uitval\", \"blorp\", ", 1)).unwrap();
    // Before the SIGHUP, the admin finds the message and reads it with the files as they are now on disk.
    let (code, listed, stderr) = output(webcare(dir.path()).args(["message", "list", "--text", "BLORP", "--json"]));
    assert_eq!(code, Some(0), "{stderr}");
    let first: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!((first["text"].as_str(), listed.lines().count()), (Some("Zwolle: blorp?"), 1), "{listed}");
    let was = first["decision"]["intent"].as_str().unwrap().to_owned();
    assert_ne!(was, "outage", "{first}");
    let id = first["id"].as_i64().unwrap().to_string();
    let (code, shown, stderr) =
        output(webcare(dir.path()).env("WEBCARE_BRIDGE__DATA_DIR", &data).args(["message", "show", &id]));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(shown.contains(&format!("decided: {}", first["decision"]["action"].as_str().unwrap())), "{shown}");
    assert!(shown.contains(&format!("(differs: intent outage (was {was})")), "{shown}");
    assert!(shown.contains("term “blorp” in "), "{shown}");
    let (code, listed, _) = output(webcare(dir.path()).args(["message", "list", "--limit", "1"]));
    assert_eq!(code, Some(0));
    assert!(listed.contains("Outage in Utrecht? No internet") && listed.contains("older: add --before "), "{listed}");
    let (code, _, stderr) = output(webcare(dir.path()).args(["message", "list", "--action", "answered"]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("unknown action `answered`"), "{stderr}");
    let (code, _, stderr) = output(webcare(dir.path()).args(["message", "show", "999"]));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("message 999 not found"), "{stderr}");
    running.signal("HUP");
    logged(&mut running, "bridge data reloaded");
    let after = ask("twee", &["Zwolle: blorp?"]);
    assert!(after.starts_with("Bedankt voor je melding"), "{after}");

    // `webcare reload`, another process, asks every running instance through the database, without a signal.
    std::fs::write(&lexicon, shipped.replacen("\"uitval\", ", "\"uitval\", \"blorp\", \"zlorp\", ", 1)).unwrap();
    let (code, said, stderr) = output(webcare(dir.path()).env("WEBCARE_BRIDGE__DATA_DIR", &data).arg("reload"));
    assert_eq!(code, Some(0), "{stderr}");
    assert!(said.starts_with("reload request 1: every running instance"), "{said}");
    let reloaded = logged(&mut running, "bridge data reloaded");
    assert!(reloaded.contains("reload request 1"), "{reloaded}");
    let zlorp = ask("vier", &["Zwolle: zlorp?"]);
    assert!(zlorp.starts_with("Bedankt voor je melding"), "{zlorp}");

    std::fs::write(&lexicon, "[[group]\nname = ").unwrap();
    // `check-config` finds it before a SIGHUP would, naming the key and the file; `webcare reload` refuses it.
    let (code, _, stderr) = output(webcare(dir.path()).env("WEBCARE_BRIDGE__DATA_DIR", &data).arg("reload"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("nothing was requested") && stderr.contains("lexicon-nl.toml"), "{stderr}");
    let (code, _, stderr) = output(webcare(dir.path()).env("WEBCARE_BRIDGE__DATA_DIR", &data).arg("check-config"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("key `bridge.data_dir`") && stderr.contains("lexicon-nl.toml"), "{stderr}");
    running.signal("HUP");
    let error = logged(&mut running, "bridge data not reloaded; the running data stays");
    assert!(error.contains("lexicon-nl.toml"), "the file is named: {error}");
    assert!(running.seen.iter().all(|l| !l.contains("bridge data reloaded")), "{:#?}", running.seen);
    let still = ask("drie", &["Deventer: blorp?"]);
    assert!(still.starts_with("Bedankt voor je melding"), "the loaded data stays: {still}");
    running.signal("TERM");
    let (status, log) = running.wait(Duration::from_secs(10));
    assert!(status.success(), "{log:#?}");
}

#[test]
fn a_bad_telegram_token_stops_the_start_without_printing_it() {
    let (_rt, fake) = fake_telegram();
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = output(
        webcare(dir.path())
            .arg("serve")
            .env("WEBCARE_HTTP__LISTEN", "127.0.0.1:0")
            .env("WEBCARE_TELEGRAM__TOKEN", "123456:wrong-secret-token")
            .env("WEBCARE_TELEGRAM__API_URL", fake.url()),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("telegram.token"), "{stderr}");
    assert!(!stderr.contains("wrong-secret-token"), "{stderr}");
}

#[test]
fn one_instance_polls_telegram_and_another_takes_over_when_it_dies() {
    let (rt, fake) = fake_telegram();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("shared.db").display());
    let instance = || {
        let mut cmd = webcare(dir.path());
        cmd.env("WEBCARE_TELEGRAM__TOKEN", fake.token())
            .env("WEBCARE_TELEGRAM__API_URL", fake.url())
            .env("WEBCARE_DATABASE__URL", &db);
        Serving::start(cmd)
    };
    let mut first = instance();
    assert!(rt.block_on(fake.wait_until(Duration::from_secs(20), || fake.polls_in_progress() == 1)));
    let mut second = instance();
    let calls_before = fake.stats().calls.get("getUpdates").copied().unwrap_or(0);

    let anna = fake.create_user(webcare_fake_telegram::NewUser::named("Anna"));
    let chat = fake.private_chat(anna);
    fake.send_text(anna, chat, "Storing in Utrecht? Geen internet sinds 10 uur");
    assert!(rt.block_on(fake.wait_until(Duration::from_secs(30), || !fake.bot_messages(chat).is_empty())));
    let calls_after = fake.stats().calls.get("getUpdates").copied().unwrap_or(0);
    // Two pollers would end each other's long polls (409) over and over; one poller makes a call per batch.
    assert!(calls_after - calls_before <= 4, "{} getUpdates calls for one message", calls_after - calls_before);

    // The polling instance dies without a word; the other takes over within one lease period.
    first.signal("KILL");
    first.wait(Duration::from_secs(5));
    let bert = fake.create_user(webcare_fake_telegram::NewUser::named("Bert"));
    let bert_chat = fake.private_chat(bert);
    fake.send_text(bert, bert_chat, "Geen internet in Utrecht, storing?");
    assert!(
        rt.block_on(fake.wait_until(Duration::from_secs(40), || !fake.bot_messages(bert_chat).is_empty())),
        "the second instance took over polling"
    );
    assert_eq!(fake.bot_messages(chat).len(), 1, "nothing was answered twice");
    second.signal("TERM");
    let (status, log) = second.wait(Duration::from_secs(10));
    assert!(status.success(), "{log:#?}");
    let (_, first_log) = first.wait(Duration::from_secs(1));
    for line in log.iter().chain(&first_log) {
        assert!(!line.contains("another process polls"), "two instances polled at once: {line}");
    }
    assert!(log.iter().any(|l| l.contains("this instance polls Telegram")), "{log:#?}");
}

fn post_json(addr: SocketAddr, path: &str, body: &serde_json::Value) -> (u16, String) {
    let body = body.to_string();
    request(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn two_instances_decide_as_one_bridge_and_the_survivor_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let db = format!("sqlite://{}", path.display());
    let instance = || {
        let mut cmd = webcare(dir.path());
        cmd.env("WEBCARE_DATABASE__URL", &db);
        Serving::start(cmd)
    };
    let deciding = |s: &Serving| get(s.addr, "/metrics").1.contains("\nwebcare_bridge_deciding 1\n");
    // A customer of the web chat, by the conversation id their browser keeps.
    let ask = |s: &Serving, who: char, text: &str| {
        let conversation = who.to_string().repeat(64);
        let body = serde_json::json!({"conversation": conversation, "id": "1", "name": "Klant", "text": text});
        let (status, answer) = post_json(s.addr, "/chat/api/messages", &body);
        assert_eq!(status, 202, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        (conversation, answer["action"].as_str().unwrap_or_default().to_owned())
    };
    let held = |s: &Serving, conversation: &str| {
        let (_, lines) = get(s.addr, &format!("/chat/api/transcript?conversation={conversation}"));
        lines.matches("Bedankt voor je melding").count()
    };

    let mut first = instance();
    assert!(deciding(&first), "the first instance on a database decides");
    let mut second = instance();
    assert!(!deciding(&second), "one instance decides at a time");

    // A question to the instance that does not decide is stored there and decided by the other; both questions end
    // up in one cluster, and each asker gets one holding answer.
    let (a, action) = ask(&second, 'a', "Storing in Zwolle? Geen internet meer");
    assert_eq!(action, "stored");
    let (b, action) = ask(&first, 'b', "internet ligt eruit in Zwolle");
    assert_eq!(action, "hold_and_subscribe");
    assert!(poll_until(Duration::from_secs(30), || held(&second, &a) == 1 && held(&first, &b) == 1), "no answers");

    // The deciding instance dies without a word: the other takes over within a lease and decides what waits.
    first.signal("KILL");
    first.wait(Duration::from_secs(5));
    let (c, action) = ask(&second, 'c', "Zwolle: internet werkt niet, storing?");
    assert_eq!(action, "stored", "the lease of the dead instance has not run out yet");
    assert!(poll_until(Duration::from_secs(40), || held(&second, &c) == 1), "nobody took over deciding");
    assert!(deciding(&second));
    assert_eq!((held(&second, &a), held(&second, &b)), (1, 1), "nothing was answered twice");
    second.signal("TERM");
    let (status, log) = second.wait(Duration::from_secs(10));
    assert!(status.success(), "{log:#?}");
    assert!(log.iter().any(|l| l.contains("this instance takes over deciding")), "{log:#?}");

    // One outage, one cluster of three: the new decider went on with the dead one's state.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let clusters = rt.block_on(async {
        let db = webcare_storage::Db::open(&db, &webcare_storage::OpenOptions::default()).await.unwrap();
        let clusters = db.open_clusters().await.unwrap();
        db.close().await;
        clusters
    });
    assert_eq!(clusters.len(), 1, "{clusters:?}");
    assert_eq!(clusters[0].members, 3, "{clusters:?}");
}

/// A fake Telegram whose clock runs `scale` times faster (limits included), with `n` customers in private chats.
fn fake_telegram_with(
    scale: f64,
    n: usize,
) -> (tokio::runtime::Runtime, webcare_fake_telegram::FakeTelegram, Vec<i64>) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config = webcare_fake_telegram::Config { time_scale: scale, ..Default::default() };
    let fake = rt.block_on(webcare_fake_telegram::FakeTelegram::start_with(config));
    let chats = (0..n)
        .map(|i| {
            let user = fake.create_user(webcare_fake_telegram::NewUser::named(&format!("klant {i}")));
            fake.private_chat(user).0
        })
        .collect();
    (rt, fake, chats)
}

/// A notice with every chat subscribed and its version 1 queued for all of them, as `Notices::broadcast` queues
/// it (one row per subscriber, keyed by notice, version and conversation). Returns the notice.
async fn queue_broadcast(db: &webcare_storage::Db, chats: &[i64]) -> webcare_domain::NoticeId {
    let now = chrono::Utc::now();
    let notice = db
        .create_notice(webcare_domain::NewNotice::published(
            "Storing internet Utrecht",
            "We werken aan een storing in Utrecht.",
            vec![webcare_domain::Service::Internet],
            &["Utrecht"],
            webcare_domain::NoticeState::Investigating,
            now,
        ))
        .await
        .unwrap();
    let ids: Vec<String> = chats.iter().map(i64::to_string).collect();
    let conversations = db.seed_subscribers(notice.id, webcare_domain::Platform::Telegram, &ids, now).await.unwrap();
    let rows: Vec<_> = conversations
        .iter()
        .map(|c| {
            let key = format!("notice:{}:v1:conv:{c}", notice.id);
            let text = "Storing internet Utrecht\n\nWe werken aan een storing in Utrecht.";
            webcare_domain::NewOutbox::message(*c, text, key, webcare_domain::Priority::BROADCAST, now)
        })
        .collect();
    for batch in rows.chunks(1000) {
        db.enqueue_many(batch, now).await.unwrap();
    }
    notice.id
}

/// `serve` against the fake with its limits scaled alike, short claims, on `database`.
fn broadcaster(dir: &Path, fake: &webcare_fake_telegram::FakeTelegram, database: &str, scale: f64) -> Serving {
    let mut cmd = webcare(dir);
    cmd.env("WEBCARE_TELEGRAM__TOKEN", fake.token())
        .env("WEBCARE_TELEGRAM__API_URL", fake.url())
        .env("WEBCARE_DATABASE__URL", database)
        .env("WEBCARE_DELIVERY__RATE_SCALE", scale.to_string())
        .env("WEBCARE_DELIVERY__LEASE_SECS", "2")
        .env("WEBCARE_DELIVERY__BATCH", "256")
        // At 20 times Telegram's speed the fake's one-second window is 50 ms, and 3 % of it (the default margin)
        // is less than the scheduling jitter of four processes on two cores; 10 % keeps it to a rare 429.
        .env("WEBCARE_DELIVERY__HEADROOM", "0.9");
    Serving::start(cmd)
}

/// Checks `condition` every 20 ms until it holds (true) or `limit` passes (false). For conditions on the fake's
/// statistics, which are too big to re-read after every single change as `wait_until` would.
fn poll_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !condition() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// The tests that drive thousands of messages through `serve` and measure timings take this, so that they do not
/// run at once and starve each other of the machine's two cores.
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How many messages beyond the first each chat received.
fn duplicates(fake: &webcare_fake_telegram::FakeTelegram) -> u64 {
    fake.stats().deliveries_per_chat.values().map(|n| n.saturating_sub(1)).sum()
}

#[test]
fn a_broadcast_survives_three_kill_9_and_reaches_everyone_once() {
    let _one_at_a_time = heavy();
    const N: usize = 10_000;
    const SCALE: f64 = 20.0; // Telegram's 30/s becomes 600/s, in the fake and in webcare alike
    let (rt, fake, chats) = fake_telegram_with(SCALE, N);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("webcare.db").display());
    let db = rt.block_on(webcare_storage::Db::open(&url, &webcare_storage::OpenOptions::default())).unwrap();
    let notice = rt.block_on(queue_broadcast(&db, &chats));

    let mut serving = broadcaster(dir.path(), &fake, &url, SCALE);
    for kill_at in [1_500u64, 4_000, 7_000] {
        assert!(
            poll_until(Duration::from_secs(120), || fake.stats().sends >= kill_at),
            "the broadcast stalled before {kill_at} messages"
        );
        serving.signal("KILL");
        serving.wait(Duration::from_secs(5));
        serving = broadcaster(dir.path(), &fake, &url, SCALE);
    }
    let everyone = || fake.stats().deliveries_per_chat.len() >= N;
    assert!(poll_until(Duration::from_secs(180), everyone), "not everyone was reached");
    serving.signal("TERM");
    let (status, log) = serving.wait(Duration::from_secs(10));
    assert!(status.success(), "{log:#?}");

    let stats = fake.stats();
    let reached: std::collections::BTreeSet<i64> = stats.deliveries_per_chat.keys().copied().collect();
    assert_eq!(reached, chats.iter().copied().collect(), "every subscriber, and nobody else");
    let dups = duplicates(&fake);
    // The only duplicates possible: requests Telegram accepted whose `mark_sent` the killed process had not yet
    // committed. That is the sends of the last moments before each kill: bounded here by 100 ms of sending at the
    // scaled rate (54 messages) per kill; measured 5 on a quiet machine, 31 with other tests running beside it.
    eprintln!("kill -9 three times during a {N}-recipient broadcast: {dups} duplicate(s), {} 429s", stats.rate_limited);
    assert!(dups <= 3 * 54, "{dups} duplicates after three kills");
    assert!(
        stats.rate_limited <= N as u64 / 100,
        "{} 429s: the restarted instances overran the limit",
        stats.rate_limited
    );
    let p = rt.block_on(webcare_app::notices::progress(&db, notice, 0.1)).unwrap();
    assert_eq!((p.sent, p.pending, p.failed), (N as i64, 0, 0), "every row is recorded as sent");
}

/// `bench ingest` and `bench broadcast` on PostgreSQL measure in a database of their own, created on the server
/// they are given and dropped at the end, so each run starts empty, as on SQLite, and leaves nothing behind (a
/// second broadcast run on one database used to stop at the first one's agents).
#[test]
fn the_benches_on_postgresql_run_in_a_database_of_their_own() {
    let _one_at_a_time = heavy();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let Some(test_db) = rt.block_on(webcare_tests::TestDb::postgres()) else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut names = Vec::new();
    let benches: [&[&str]; 2] = [
        &["ingest", "--messages", "60"],
        &["broadcast", "--subscribers", "100", "--scale", "10", "--platform", "telegram"],
    ];
    for args in benches {
        for _ in 0..2 {
            let (code, stdout, stderr) =
                output(webcare(dir.path()).arg("bench").args(args).args(["--database", test_db.url()]));
            assert_eq!(code, Some(0), "{args:?}: {stdout}{stderr}");
            let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
            assert_eq!((last["bench"].as_str(), last["backend"].as_str()), (Some(args[0]), Some("postgres")), "{last}");
            let name = stdout
                .split_whitespace()
                .find(|w| w.starts_with("webcare_bench_"))
                .map(|w| w.trim_end_matches(','))
                .unwrap_or_else(|| panic!("no database named in {stdout}"))
                .to_owned();
            let options = webcare_storage::OpenOptions {
                migrate: false,
                connect_retry: Duration::ZERO,
                ..webcare_storage::OpenOptions::default()
            };
            let gone =
                rt.block_on(webcare_storage::Db::open(&webcare_storage::with_database(test_db.url(), &name), &options));
            assert!(gone.is_err(), "{name} was dropped");
            names.push(name);
        }
    }
    let distinct: std::collections::BTreeSet<&String> = names.iter().collect();
    assert_eq!(distinct.len(), names.len(), "each run has a database of its own: {names:?}");
    // The database the benches were pointed at is untouched: nothing was stored in it.
    assert!(rt.block_on(test_db.db().inbound_after(webcare_domain::InboundId(0), 1)).unwrap().is_empty());
    assert!(rt.block_on(test_db.db().agents()).unwrap().is_empty());
}

#[test]
fn two_instances_on_one_postgres_share_a_broadcast_within_one_budget() {
    let _one_at_a_time = heavy();
    const N: usize = 3_000;
    const SCALE: f64 = 20.0;
    let (rt, fake, chats) = fake_telegram_with(SCALE, N);
    let Some(test_db) = rt.block_on(webcare_tests::TestDb::postgres()) else { return };
    rt.block_on(queue_broadcast(test_db.db(), &chats));
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut first = broadcaster(dir.path(), &fake, test_db.url(), SCALE);
    let mut second = broadcaster(dir.path(), &fake, test_db.url(), SCALE);
    let everyone = || fake.stats().deliveries_per_chat.len() >= N;
    assert!(poll_until(Duration::from_secs(120), everyone), "not everyone was reached");
    let took = started.elapsed();
    assert_eq!(fake.polls_in_progress(), 1, "one instance polls Telegram");
    for s in [&mut first, &mut second] {
        s.signal("TERM");
        let (status, log) = s.wait(Duration::from_secs(10));
        assert!(status.success(), "{log:#?}");
    }
    let stats = fake.stats();
    assert_eq!(duplicates(&fake), 0, "no message twice");
    eprintln!("two instances, {N} recipients: {:?}, {} 429s", started.elapsed(), stats.rate_limited);
    assert!(stats.rate_limited <= N as u64 / 100, "{} 429s: the two instances overran the limit", stats.rate_limited);
    // 3,000 messages at 90 % of 600/s take 5.6 s for both instances together; two budgets would halve that.
    assert!(took >= Duration::from_millis(5_000), "{took:?}: faster than the limit allows");
    // Both did part of the work: the outbox records which worker sent each row.
    let workers: std::collections::BTreeSet<String> = rt.block_on(async {
        let mut workers = std::collections::BTreeSet::new();
        for chat in chats.iter().step_by(10) {
            let c = test_db
                .db()
                .upsert_conversation(
                    webcare_domain::NewConversation {
                        platform: webcare_domain::Platform::Telegram,
                        platform_chat_id: chat.to_string(),
                        kind: webcare_domain::ConversationKind::Private,
                        title: None,
                    },
                    chrono::Utc::now(),
                )
                .await
                .unwrap();
            let (_, out) = test_db.db().transcript(c.id).await.unwrap();
            workers.extend(out.into_iter().filter_map(|o| o.claimed_by));
        }
        workers
    });
    assert_eq!(workers.len(), 2, "both instances sent part of the broadcast: {workers:?}");
}

/// An admin changes a lexicon from a terminal (as from the console or the API): the change is kept in the
/// database, and every instance on it applies it within seconds, without a file on either server and without a
/// restart; `undo` brings the data files' word back the same way.
#[test]
fn a_lexicon_change_from_the_terminal_reaches_every_instance() {
    let dir = tempfile::tempdir().unwrap();
    agent_add(dir.path(), "ria", "admin");
    let mut first = Serving::start(webcare(dir.path()));
    let mut second = Serving::start(webcare(dir.path()));
    let ask = |s: &Serving, who: char, text: &str| {
        let body = serde_json::json!({"conversation": who.to_string().repeat(64), "id": "1", "text": text});
        let (status, answer) = post_json(s.addr, "/chat/api/messages", &body);
        assert_eq!(status, 202, "{answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        answer["action"].as_str().unwrap_or_default().to_owned()
    };
    let text = "Mijn glasvezel is kapot, wat nu?";
    assert_ne!(ask(&first, 'a', text), "hold_and_subscribe", "not an outage with the shipped words");
    let lexicon = |args: &[&str]| {
        let (code, said, stderr) = output(webcare(dir.path()).arg("lexicon").args(args));
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        said
    };
    // Tried first on what customers wrote: the stored question would read as an outage; nothing is changed.
    let tried = lexicon(&["add", "--dry-run", "--language", "nl", "--group", "outage", "glasvezel is kapot"]);
    assert!(
        tried.starts_with("dry run, nothing changed: add “glasvezel is kapot” to nl outage would read 1 of the latest 1 stored messages differently:"),
        "{tried}"
    );
    assert!(
        tried.contains(": intent outage (was ") && tried.contains("\n    > Mijn glasvezel is kapot, wat nu?"),
        "{tried}"
    );
    assert!(lexicon(&["list"]).lines().all(|l| !l.contains("changes by admins")), "a dry run keeps nothing");
    let said = lexicon(&["add", "--as", "ria", "--language", "nl", "--group", "outage", "glasvezel is kapot"]);
    assert!(said.starts_with("lexicon change 1: add “glasvezel is kapot” to nl outage;"), "{said}");
    for instance in [&mut first, &mut second] {
        let line = instance.logged("bridge data reloaded");
        assert!(line.contains("reload request 1"), "{line}");
    }
    assert_eq!(ask(&first, 'b', text), "hold_and_subscribe", "an outage question now");
    let listed = lexicon(&["list", "--language", "nl", "--group", "outage"]);
    assert!(listed.contains("\n    glasvezel is kapot\n"), "{listed}");
    assert!(listed.contains("  1 add “glasvezel is kapot” to nl outage · "), "{listed}");
    // What cannot be done is refused and asks nothing of the instances.
    let (code, _, stderr) = output(webcare(dir.path()).args([
        "lexicon",
        "remove",
        "--as",
        "ria",
        "--language",
        "nl",
        "--group",
        "outage",
        "nergens",
    ]));
    assert_eq!(code, Some(1));
    assert!(stderr.contains("“nergens” is not a term of nl outage"), "{stderr}");

    assert!(lexicon(&["undo", "1", "--as", "ria"]).starts_with("lexicon change 1 taken back"));
    for instance in [&mut first, &mut second] {
        let line = instance.logged("bridge data reloaded");
        assert!(line.contains("reload request 2"), "{line}");
    }
    assert_ne!(ask(&first, 'c', text), "hold_and_subscribe", "the shipped words again");

    // A place's other name, the same way: a neighbourhood of Utrecht is Utrecht on both instances.
    assert!(lexicon(&["list"]).contains("provinces and places, whose terms are their other names"));
    let said = lexicon(&["add", "--as", "ria", "--language", "regions", "--group", "Utrecht", "Rijnsweerd"]);
    assert!(said.starts_with("lexicon change 2: add “Rijnsweerd” to regions Utrecht;"), "{said}");
    for instance in [&mut first, &mut second] {
        let line = instance.logged("bridge data reloaded");
        assert!(line.contains("reload request 3"), "{line}");
    }
    assert!(lexicon(&["list", "--language", "regions", "--group", "Utrecht"]).contains("\n    Rijnsweerd\n"));
    assert_eq!(ask(&first, 'd', "Storing in Rijnsweerd? Geen internet sinds vanochtend"), "hold_and_subscribe");
    let (code, listed, stderr) =
        output(webcare(dir.path()).args(["message", "list", "--text", "Rijnsweerd", "--json"]));
    assert_eq!(code, Some(0), "{stderr}");
    let stored: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(stored["decision"]["region"], "Utrecht", "{stored}");
    // A replay reads with the data files alone, or, asked to, with the changes kept in the database as well.
    let past = dir.path().join("past.jsonl");
    let line = serde_json::json!({"id": "p1", "created_at": "2026-11-25T08:00:00Z", "text": "Storing in Rijnsweerd? Geen internet"});
    std::fs::write(&past, format!("{line}\n")).unwrap();
    let replayed = |extra: &[&str]| {
        let (code, out, stderr) = output(webcare(dir.path()).arg("replay").arg(&past).args(extra));
        assert_eq!(code, Some(0), "{stderr}");
        let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        (first["region"].as_str().unwrap_or_default().to_owned(), stderr)
    };
    assert_eq!(replayed(&[]).0, "Rijnsweerd", "the files alone");
    let (region, said) = replayed(&["--with-changes"]);
    assert_eq!(region, "Utrecht");
    assert!(said.contains("with 1 lexicon and region changes from the database"), "{said}");
}
