//! The console and the web chat in a real browser: Debian's headless Chromium, driven through chromedriver with
//! fantoccini, against the real router served on 127.0.0.1 with delivery running.
//!
//! Without Chromium or chromedriver these tests fail, with a message saying how to install them; only outside CI
//! and with `WEBCARE_TEST_SKIP_BROWSER=1` do they skip instead. With `WEBCARE_SCREENSHOTS=1` they write the
//! screenshots in `docs/` (`console-queue.png`, `console-ticket.png`, `console-notices.png`, `console-report.png`,
//! `console-messages.png`, `console-lexicon.png`).
//! The tests take turns (one browser at a time), since each starts a Chromium of its own.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, header};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use webcare_app::delivery::{Delivery, DeliveryConfig};
use webcare_domain::{NewAgent, Role};
use webcare_tests::TestDb;
use webcare_web::webchat::WebchatSender;

/// How long a condition in the page may take to come true.
const WAIT: Duration = Duration::from_secs(30);

static ONE_BROWSER_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A program from the environment variable `var`, or the first of `names` on the PATH.
fn program(var: &str, names: &[&str]) -> Option<PathBuf> {
    if let Ok(p) = std::env::var(var) {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    names.iter().flat_map(|n| std::env::split_paths(&path).map(move |dir| dir.join(n))).find(|p| p.is_file())
}

/// webcare on a free port with two agents (`ada` admin, `bo` agent; passwords `<name>-secret`), delivery running.
struct Server {
    base: String,
    router: axum::Router,
    state: webcare_web::AppState,
    shutdown: CancellationToken,
    _db: TestDb,
}

impl Server {
    async fn start() -> Server {
        let db = TestDb::sqlite().await;
        let state = webcare_tests::app_state(db.db()).await;
        for (name, role) in [("ada", Role::Admin), ("bo", Role::Agent)] {
            let hash = webcare_web::auth::hash_password(&format!("{name}-secret")).unwrap();
            state
                .store
                .create_agent(NewAgent { name: name.into(), role, password_hash: Some(hash), at: chrono::Utc::now() })
                .await
                .unwrap();
        }
        let shutdown = state.shutdown.clone();
        let delivery = Delivery::new(
            state.store.clone(),
            vec![Arc::new(WebchatSender { hub: state.webchat.clone() })],
            DeliveryConfig::default(),
        );
        let stop = shutdown.clone();
        tokio::spawn(async move { delivery.run(stop).await });
        let router = webcare_web::router(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(webcare_web::serve(listener, router.clone(), shutdown.clone()));
        Server { base, router, state, shutdown, _db: db }
    }

    /// A customer message posted straight to the web chat API, for a fuller queue.
    async fn customer(&self, conversation: &str, name: &str, text: &str) {
        let post = json!({"conversation": conversation, "id": "seed", "name": name, "text": text});
        let response = self
            .router
            .clone()
            .oneshot(
                Request::post("/chat/api/messages")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(post.to_string()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert!(response.status().is_success());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// chromedriver on a free port with one Chromium session; both end with it.
struct Browser {
    client: Client,
    driver: tokio::process::Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// `None` only when skipping is allowed (outside CI, `WEBCARE_TEST_SKIP_BROWSER=1`).
    async fn start() -> Option<Browser> {
        let chromium = program("WEBCARE_CHROMIUM", &["chromium", "chromium-browser", "google-chrome"]);
        let driver = program("WEBCARE_CHROMEDRIVER", &["chromedriver"]);
        let (Some(chromium), Some(driver)) = (chromium, driver) else {
            let why = "Chromium and chromedriver are needed for the console's browser tests and were not found. \
                       Install them (`apt-get install chromium chromium-driver`; scripts/test does), or point \
                       WEBCARE_CHROMIUM and WEBCARE_CHROMEDRIVER at them.";
            if !in_ci() && std::env::var("WEBCARE_TEST_SKIP_BROWSER").is_ok_and(|v| v == "1") {
                eprintln!("skipping a browser test (WEBCARE_TEST_SKIP_BROWSER=1): {why}");
                return None;
            }
            panic!("{why} Outside CI, WEBCARE_TEST_SKIP_BROWSER=1 skips these tests.");
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = tokio::process::Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // A group of its own, which the Chromium it starts joins: a failing test kills both (see `Drop`).
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", driver.display()));
        let profile = tempfile::tempdir().unwrap();
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,900".to_owned(),
            // The browser's language (`navigator.language`): the web chat page speaks it and sends it along.
            "--accept-lang=en-GB".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".to_owned(), json!({"binary": chromium.display().to_string(), "args": args}));
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        // chromedriver takes a moment to listen: poll its port until a session starts.
        let client = loop {
            let http = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(http).capabilities(caps.clone()).connect(&url).await {
                Ok(c) => break c,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("no WebDriver session from {} at {url}: {e}", driver.display()),
            }
        };
        client.set_window_size(1280, 900).await.unwrap();
        Some(Browser { client, driver: child, _profile: profile })
    }

    /// Ends the session, then chromedriver's process group, so nothing of the browser is left.
    async fn stop(mut self) {
        let _ = self.client.clone().close().await;
        self.kill_group();
        let _ = self.driver.kill().await;
    }

    fn kill_group(&self) {
        if let Some(pid) = self.driver.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }

    async fn goto(&self, base: &str, path: &str) {
        self.client.goto(&format!("{base}{path}")).await.unwrap();
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.client.wait().at_most(WAIT).for_element(Locator::Css(css)).await.unwrap();
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.client.wait().at_most(WAIT).for_element(Locator::Css(css)).await.unwrap().click().await.unwrap();
    }

    /// Waits until an element matching `css` has a text containing `needle`; returns that text.
    async fn text(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(elements) = self.client.find_all(Locator::Css(css)).await {
                for e in elements {
                    if let Ok(t) = e.text().await
                        && t.contains(needle)
                    {
                        return t;
                    }
                }
            }
            if Instant::now() > deadline {
                let page = self.client.source().await.unwrap_or_default();
                panic!("waited {WAIT:?} for {needle:?} in `{css}`; the page is:\n{page}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn login(&self, base: &str, name: &str) {
        self.goto(base, "/login").await;
        self.fill("input[name=name]", name).await;
        self.fill("input[name=password]", &format!("{name}-secret")).await;
        self.click("form.login button").await;
        self.text("header.top .who span", name).await;
    }

    /// Writes a screenshot of the current page to `docs/<name>.png` when `WEBCARE_SCREENSHOTS=1`.
    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        if std::env::var("WEBCARE_SCREENSHOTS").is_ok_and(|v| v == "1") {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs").join(format!("{name}.png"));
            std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
    }
}

impl Drop for Browser {
    /// A test that panics never reaches `stop`: end chromedriver's process group, Chromium included, so no
    /// browser outlives the test.
    fn drop(&mut self) {
        self.kill_group();
    }
}

const BILLING: &str = "Mijn factuur klopt niet, ik betaal dubbel voor mijn abonnement";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_opens_a_case_and_an_agent_claims_and_answers_it() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let Some(b) = Browser::start().await else { return };
    let s = Server::start().await;
    for (i, (name, text)) in [
        ("Sam", "Ik verhuis volgende maand naar Gent, kan mijn abonnement mee?"),
        ("Noor", "Mijn modem knippert rood en ik heb geen wifi meer na de update"),
        ("Lotte", "Ik wil mijn contract opzeggen, wat is de opzegtermijn?"),
    ]
    .into_iter()
    .enumerate()
    {
        s.customer(&format!("{:02x}{}", i + 1, "a".repeat(62)), name, text).await;
    }

    // The customer writes in the web chat, which speaks the browser's language (English here).
    b.goto(&s.base, "/chat").await;
    assert_eq!(b.text("#send", "Send").await, "Send");
    assert_eq!(b.text("h1", "Customer service").await, "Customer service");
    let placeholder = b.client.find(Locator::Css("#text")).await.unwrap().attr("placeholder").await.unwrap();
    assert_eq!(placeholder.as_deref(), Some("Type your message…"));
    let customer = b.client.windows().await.unwrap().remove(0);
    b.fill("#name", "Eva").await;
    // A command shows no language of its own: before she has written anything, it is answered in the browser's.
    b.fill("#text", "/status").await;
    b.click("#send").await;
    assert_eq!(b.text("#transcript li.out", "No open case.").await, "No open case.");
    b.fill("#text", BILLING).await;
    b.click("#send").await;
    b.text("#transcript li.in", "factuur").await;
    // Her question is Dutch and answered in Dutch; from then on her words say her language, not her browser.
    b.text("#transcript li.out", "Bedankt voor je bericht").await;
    b.fill("#text", "/status").await;
    b.click("#send").await;
    let status = b.text("#transcript li.out", "Zaak ").await;
    assert!(!status.contains("Case"), "{status}");

    // An agent logs in in another tab, finds the case in the queue, claims it and answers.
    let agent = b.client.new_window(true).await.unwrap().handle;
    b.client.switch_to_window(agent.clone()).await.unwrap();
    b.login(&s.base, "bo").await;
    b.text("table.queue", "Eva").await;
    b.screenshot("console-queue").await;
    let tickets = s.state.store.tickets(&[]).await.unwrap();
    let eva = tickets.iter().find(|t| t.subject.contains("factuur")).expect("Eva's ticket");
    b.click(&format!("a[href='/tickets/{}']", eva.id)).await;
    b.text("#transcript", BILLING).await;
    b.click("#claim").await;
    b.text("#holder", "bo").await;
    b.fill("#reply-text", "Dag Eva, we zetten je factuur recht.").await;
    b.click("#send-reply").await;
    b.text("#transcript li.out", "we zetten je factuur recht").await;
    b.fill("#note-text", "Dubbele incasso sinds november; terugbetaling aangevraagd.").await;
    b.click("#add-note").await;
    b.text("#transcript li.note", "terugbetaling").await;
    b.screenshot("console-ticket").await;

    // Bo gets a code to link a staff chat account, from the Account page in the navigation.
    b.click("header.top nav a[href='/account']").await;
    b.text("main", "No chat account is linked to you.").await;
    b.click("main form[action='/account'] button").await;
    let shown = b.text("#link-command", "/link ").await;
    assert_eq!(shown.chars().count(), "/link ".len() + 10, "{shown}");

    // The customer sees the answer in the chat they used, without reloading.
    b.client.switch_to_window(customer).await.unwrap();
    b.text("#transcript li.out", "Dag Eva, we zetten je factuur recht.").await;
    let texts = b.client.find_all(Locator::Css("#transcript li")).await.unwrap();
    for t in texts {
        assert!(!t.text().await.unwrap().contains("terugbetaling"), "the internal note never reaches the customer");
    }
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_publishes_a_notice_that_a_customer_then_receives() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let Some(b) = Browser::start().await else { return };
    let s = Server::start().await;
    for (i, text) in [
        "Storing in Utrecht? Geen internet sinds 10 uur",
        "Mijn factuur klopt niet, ik betaal dubbel",
        "Tv doet het niet in Gent, storing?",
    ]
    .into_iter()
    .enumerate()
    {
        s.customer(&format!("{:02x}{}", i + 11, "b".repeat(62)), "Klant", text).await;
    }

    b.login(&s.base, "ada").await;
    b.goto(&s.base, "/notices").await;
    b.fill("#notice-title", "Storing internet Utrecht").await;
    b.fill("#notice-text", "We werken aan een internetstoring in Utrecht. Verwachte oplossing: 14:00.").await;
    b.fill("textarea[name=text_en]", "We are fixing an internet outage in Utrecht. Expected fix: 14:00.").await;
    b.click("input[name=service][value=internet]").await;
    b.fill("#notice-regions", "Utrecht").await;
    b.click("#create-notice").await;
    b.text("#subscribers", "").await;
    b.text("main h1", "Notice").await;
    b.text(".notice-text-en", "We are fixing an internet outage").await;

    // A customer asks about the outage in English and gets the notice's English text at once.
    b.goto(&s.base, "/chat").await;
    b.fill("#text", "Is the internet down in Utrecht? No internet since 10 am").await;
    b.click("#send").await;
    let answer = b.text("#transcript li.out", "We are fixing an internet outage in Utrecht.").await;
    assert!(!answer.contains("We werken"), "{answer}");

    // The notice page counts its subscribers, who get every update: this customer, and the one who asked about
    // Utrecht before the notice existed (its cluster closed into the notice when it was published).
    b.goto(&s.base, "/notices").await;
    assert_eq!(b.text("table.notices td:nth-child(8)", "2").await, "2");
    b.screenshot("console-notices").await;

    b.goto(&s.base, "/reports").await;
    b.text("figcaption", "Messages per category per hour").await;
    b.screenshot("console-report").await;

    // The public status page shows it too, to anyone, styled (the stylesheet passes the page's CSP).
    b.goto(&s.base, "/status").await;
    b.text("#notices h2", "Storing internet Utrecht").await;
    b.text("#notices .scope", "internet · Utrecht").await;
    let styled = b
        .client
        .execute("return getComputedStyle(document.querySelector('#notices .notice')).borderTopStyle", vec![])
        .await
        .unwrap();
    assert_eq!(styled, json!("solid"), "chat.css applies");

    // Why a message was answered so: from the notice to the messages it answered, then one message's reasons.
    b.goto(&s.base, "/notices").await;
    b.click("table.notices td:nth-child(2) a").await;
    b.click("#answered").await;
    b.text("table.messages", "Is the internet down in Utrecht?").await;
    b.click("table.messages tbody tr:first-child td:first-child a").await;
    b.text("#decided", "rule notice-match").await;
    b.text("#decided .reasons", "term “no internet”").await;
    b.text("#reading-same", "reads it the same way").await;
    b.screenshot("console-messages").await;
    // The filter form: what became a ticket.
    b.goto(&s.base, "/messages").await;
    let action = b.client.wait().at_most(WAIT).for_element(Locator::Css("select[name=action]")).await.unwrap();
    action.select_by_value("ticket").await.unwrap();
    b.click("#message-filters button").await;
    b.text("table.messages", "Mijn factuur klopt niet").await;
    let rows = b.client.find_all(Locator::Css("table.messages tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 1, "only the bill became a ticket");
    // The lexicon: a term added to a group from the form is listed among the admins' changes.
    b.goto(&s.base, "/lexicon").await;
    b.text("#no-changes", "None").await;
    let group = b.client.wait().at_most(WAIT).for_element(Locator::Css("#lexicon-change select[name=group]")).await;
    group.unwrap().select_by_value("nl/outage").await.unwrap();
    b.fill("#lexicon-change input[name=term]", "glasvezel is kapot").await;
    // Tried first on the stored messages (none of them says it), then applied from the page that shows that.
    b.click("#lexicon-try").await;
    b.text("#tried", "Nothing is changed yet").await;
    b.click("#lexicon-apply-tried button").await;
    let row = b.text("#lexicon-changes tbody tr", "glasvezel is kapot").await;
    assert!(row.contains("add") && row.contains("nl · outage") && row.contains("ada"), "{row}");
    b.screenshot("console-lexicon").await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_sent_through_the_web_chat_is_text_in_the_console() {
    let _turn = ONE_BROWSER_AT_A_TIME.lock().await;
    let Some(b) = Browser::start().await else { return };
    let s = Server::start().await;
    let injection = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    b.goto(&s.base, "/chat").await;
    b.fill("#name", "<img src=x onerror=alert(3)>").await;
    b.fill("#text", &format!("{BILLING} {injection}")).await;
    b.click("#send").await;
    b.text("#transcript li.in", "<script>alert(1)</script>").await;

    b.login(&s.base, "bo").await;
    b.text("table.queue", "<img src=x onerror=alert(3)>").await;
    let ticket = s.state.store.tickets(&[]).await.unwrap().remove(0);
    b.goto(&s.base, &format!("/tickets/{}", ticket.id)).await;
    let shown = b.text("#transcript li.in", "onerror=alert(2)").await;
    assert!(shown.contains(injection), "shown as text: {shown}");
    assert!(b.client.get_alert_text().await.is_err(), "no alert opened");
    for css in ["main img", "main script", "#transcript img", "#transcript script"] {
        assert!(b.client.find_all(Locator::Css(css)).await.unwrap().is_empty(), "no `{css}` element");
    }
    assert_eq!(b.text(".customer", "onerror").await, "<img src=x onerror=alert(3)>");
    b.stop().await;
}
