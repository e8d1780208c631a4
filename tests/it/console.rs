//! The agents' web console over HTTP, in process, with the real intake, ticketing, notices and delivery behind it:
//! login (success, identical failures, rate limits), sessions, CSRF, roles, 404, 413, escaping, and every page and
//! action. `console/browser.rs` drives the same router in headless Chromium.

mod browser;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use webcare_app::delivery::{Delivery, DeliveryConfig};
use webcare_domain::{NewAgent, Role, Service, TicketState};
use webcare_tests::TestDb;
use webcare_web::console::ConsoleConfig;
use webcare_web::webchat::WebchatSender;

/// A console over a fresh database, with an admin `ada` and an agent `bo` (passwords `ada-secret`, `bo-secret`).
struct Setup {
    router: axum::Router,
    state: webcare_web::AppState,
    delivery: Delivery,
    pipeline: Arc<webcare_app::intake::Pipeline>,
    _db: TestDb,
}

async fn setup() -> Setup {
    setup_with(None).await
}

/// With `config`, the router holds the console alone, configured so; otherwise it is the whole application.
async fn setup_with(config: Option<ConsoleConfig>) -> Setup {
    let db = TestDb::sqlite().await;
    let app = webcare_tests::app(db.db()).await;
    let pipeline = app.pipeline.clone();
    let state = webcare_tests::state_of(app);
    for (name, role) in [("ada", Role::Admin), ("bo", Role::Agent), ("cy", Role::Agent)] {
        let hash = webcare_web::auth::hash_password(&format!("{name}-secret")).unwrap();
        state
            .store
            .create_agent(NewAgent { name: name.into(), role, password_hash: Some(hash), at: chrono::Utc::now() })
            .await
            .unwrap();
    }
    let delivery = Delivery::new(
        state.store.clone(),
        vec![Arc::new(WebchatSender { hub: state.webchat.clone() })],
        DeliveryConfig::default(),
    );
    let router = match config {
        None => webcare_web::router(state.clone()),
        Some(c) => axum::Router::new().merge(webcare_web::console::routes(c)).with_state(state.clone()),
    };
    Setup { router, state, delivery, pipeline, _db: db }
}

/// A browser: keeps cookies, comes from one address.
struct Client<'a> {
    setup: &'a Setup,
    cookies: HashMap<String, String>,
    address: SocketAddr,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).map_or("", |v| v.to_str().unwrap())
    }

    /// The value of the first hidden `csrf` field on the page.
    fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
        self.body[at..at + 64].to_owned()
    }
}

impl<'a> Client<'a> {
    fn new(setup: &'a Setup) -> Self {
        Self::from(setup, "192.0.2.1:5000")
    }

    fn from(setup: &'a Setup, address: &str) -> Self {
        Client { setup, cookies: HashMap::new(), address: address.parse().unwrap() }
    }

    async fn send(&mut self, mut request: Request<Body>) -> Reply {
        let cookie = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        if !cookie.is_empty() {
            request.headers_mut().insert(header::COOKIE, cookie.parse().unwrap());
        }
        request.extensions_mut().insert(ConnectInfo(self.address));
        let response = self.setup.router.clone().oneshot(request).await.unwrap();
        for v in response.headers().get_all(header::SET_COOKIE) {
            let v = v.to_str().unwrap();
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = pair.split_once('=').unwrap();
            if val.is_empty() || v.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), val.to_owned());
            }
        }
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 4 << 20).await.unwrap();
        Reply { status, headers, body: String::from_utf8_lossy(&bytes).into_owned() }
    }

    async fn get(&mut self, path: &str) -> Reply {
        self.send(Request::get(path).body(Body::empty()).unwrap()).await
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let body = fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&");
        self.send(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    /// Posts a form with this session's CSRF token, read from `page` first.
    async fn submit(&mut self, page: &str, path: &str, fields: &[(&str, &str)]) -> Reply {
        let csrf = self.get(page).await.csrf();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(path, &all).await
    }

    async fn try_login(&mut self, name: &str, password: &str) -> Reply {
        let form = self.get("/login").await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = form.csrf();
        self.post("/login", &[("csrf", &csrf), ("name", name), ("password", password)]).await
    }

    async fn login(&mut self, name: &str) {
        let r = self.try_login(name, &format!("{name}-secret")).await;
        assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/"), "{}", r.body);
    }
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A customer writes in the web chat; returns their conversation id.
async fn customer_writes(setup: &Setup, name: &str, text: &str) -> String {
    let session =
        setup.router.clone().oneshot(Request::post("/chat/api/session").body(Body::empty()).unwrap()).await.unwrap();
    let body: Value =
        serde_json::from_slice(&axum::body::to_bytes(session.into_body(), 1 << 20).await.unwrap()).unwrap();
    let conversation = body["conversation"].as_str().unwrap().to_owned();
    let post = json!({"conversation": conversation, "id": "m1", "name": name, "text": text});
    let response = setup
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
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    conversation
}

async fn chat_transcript(setup: &Setup, conversation: &str) -> Vec<Value> {
    let response = setup
        .router
        .clone()
        .oneshot(Request::get(format!("/chat/api/transcript?conversation={conversation}")).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let body: Value =
        serde_json::from_slice(&axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap()).unwrap();
    body.as_array().unwrap().clone()
}

const BILLING: &str = "Mijn factuur klopt niet, ik betaal dubbel voor mijn abonnement";
const INJECTION: &str = "<script>alert(1)</script><img src=x onerror=alert(2)>";

async fn only_ticket(setup: &Setup) -> webcare_domain::Ticket {
    let tickets = setup.state.store.tickets(&[]).await.unwrap();
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    tickets.into_iter().next().unwrap()
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_name_get_the_same_answer() {
    let s = setup().await;
    let mut c = Client::new(&s);
    let started = std::time::Instant::now();
    let wrong = c.try_login("bo", "not-it").await;
    assert!(started.elapsed() >= Duration::from_millis(400), "failures are answered slowly");
    let unknown = c.try_login("nobody-here", "not-it").await;
    let cy = s.state.store.agent_by_name("cy").await.unwrap().unwrap().id;
    s.state.store.set_agent_active(cy, false).await.unwrap();
    let inactive = c.try_login("cy", "cy-secret").await;
    // The page repeats the name typed; apart from it, the answers are the same, byte for byte.
    let normalise = |r: &Reply, name: &str| r.body.replace(&format!("value=\"{name}\""), "value=\"?\"");
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    for (other, name) in [(&unknown, "nobody-here"), (&inactive, "cy")] {
        assert_eq!(other.status, wrong.status);
        assert_eq!(normalise(other, name), normalise(&wrong, "bo"));
    }
    assert!(wrong.body.contains("Wrong name or password."));
    assert!(!c.cookies.contains_key("webcare_session"));
    assert_eq!(c.get("/").await.location(), "/login");

    let ok = c.try_login("bo", "bo-secret").await;
    assert_eq!((ok.status, ok.location()), (StatusCode::SEE_OTHER, "/"));
    let cookie = ok
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("webcare_session="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain http on 127.0.0.1 by default: {cookie}");
    let queue = c.get("/").await;
    assert_eq!(queue.status, StatusCode::OK);
    let csp = queue.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(queue.headers[header::CACHE_CONTROL], "no-store");
    assert!(queue.body.contains("bo · agent"));
    // The login page of a logged-in agent sends them to the queue.
    assert_eq!(c.get("/login").await.location(), "/");

    // Behind https the cookie is Secure.
    let mut d = Client::new(&s);
    let form = d.get("/login").await;
    let csrf = form.csrf();
    let cookie = d.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
    let request = Request::post("/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("x-forwarded-proto", "https")
        .header(header::COOKIE, cookie)
        .body(Body::from(format!("csrf={csrf}&name=ada&password=ada-secret")))
        .unwrap();
    let r = d.send(request).await;
    assert!(r.headers[header::SET_COOKIE].to_str().unwrap().contains("; Secure"));
}

#[tokio::test]
async fn logging_in_needs_the_login_forms_token() {
    let s = setup().await;
    let mut c = Client::new(&s);
    let r = c.post("/login", &[("name", "bo"), ("password", "bo-secret")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    c.get("/login").await;
    let r = c.post("/login", &[("csrf", &"0".repeat(64)), ("name", "bo"), ("password", "bo-secret")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(!c.cookies.contains_key("webcare_session"));
}

#[tokio::test]
async fn repeated_failures_are_rate_limited_per_account_and_per_address() {
    let config =
        ConsoleConfig { failed_login_floor: Duration::ZERO, login_failures_per_address: 4, ..ConsoleConfig::default() };
    let s = setup_with(Some(config)).await;
    // Per account: five failures for `bo`, from different addresses, and even the right password waits.
    for i in 0..5 {
        let r = Client::from(&s, &format!("198.51.100.{i}:1")).try_login("bo", "guess").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let r = Client::from(&s, "198.51.100.9:1").try_login("bo", "bo-secret").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.contains("Too many failed logins. Try again in 15 minutes."), "{}", r.body);
    assert!(r.headers.contains_key(header::RETRY_AFTER));
    // Another account is not affected.
    Client::from(&s, "198.51.100.9:1").login("ada").await;

    // Per address: four failures from one address, whatever the names.
    let mut attacker = Client::from(&s, "203.0.113.7:4000");
    for name in ["x1", "x2", "x3", "x4"] {
        assert_eq!(attacker.try_login(name, "guess").await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(attacker.try_login("cy", "cy-secret").await.status, StatusCode::TOO_MANY_REQUESTS);
    Client::from(&s, "203.0.113.8:4000").login("cy").await;

    // Another instance on the same database (a console of its own) counts the same failures: spreading guesses
    // over instances gains nothing.
    let mut s = s;
    let config =
        ConsoleConfig { failed_login_floor: Duration::ZERO, login_failures_per_address: 4, ..ConsoleConfig::default() };
    s.router = axum::Router::new().merge(webcare_web::console::routes(config)).with_state(s.state.clone());
    let r = Client::from(&s, "198.51.100.20:1").try_login("bo", "bo-secret").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let mut attacker = Client::from(&s, "203.0.113.7:4000");
    assert_eq!(attacker.try_login("ada", "ada-secret").await.status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn pages_need_a_session_and_forms_need_its_token() {
    let s = setup().await;
    customer_writes(&s, "Eva", BILLING).await;
    let id = only_ticket(&s).await.id;
    let mut anonymous = Client::new(&s);
    for page in ["/", "/tickets/1", "/notices", "/alerts", "/reports", "/agents", "/canned", "/console/events?queue=1"]
    {
        let r = anonymous.get(page).await;
        assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/login"), "{page}");
    }
    let r = anonymous.post(&format!("/tickets/{id}/claim"), &[("csrf", &"a".repeat(64))]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let mut bo = Client::new(&s);
    bo.login("bo").await;
    let claim = format!("/tickets/{id}/claim");
    assert_eq!(bo.post(&claim, &[]).await.status, StatusCode::FORBIDDEN, "no token");
    assert_eq!(bo.post(&claim, &[("csrf", &"f".repeat(64))]).await.status, StatusCode::FORBIDDEN, "a wrong token");
    // Another session's token is no good either.
    let mut cy = Client::new(&s);
    cy.login("cy").await;
    let cy_token = cy.get("/").await.csrf();
    let r = bo.post(&claim, &[("csrf", &cy_token)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("security token"), "{}", r.body);
    assert_eq!(s.state.store.ticket(id).await.unwrap().claimed_by, None, "nothing happened");
    let r = bo.submit("/", &claim, &[]).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, format!("/tickets/{id}").as_str()));

    // Logging out ends the session on the server: the old cookie is worth nothing.
    let old = bo.cookies.clone();
    let r = bo.submit("/", "/logout", &[]).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/login"));
    bo.cookies = old;
    assert_eq!(bo.get("/").await.location(), "/login");
}

#[tokio::test]
async fn agents_get_403_on_admin_pages_and_actions() {
    let s = setup().await;
    customer_writes(&s, "Eva", BILLING).await;
    let id = only_ticket(&s).await.id;
    let mut bo = Client::new(&s);
    bo.login("bo").await;
    let queue = bo.get("/").await;
    assert!(!queue.body.contains("href=\"/agents\""), "admin links are not shown to agents");
    for page in ["/agents", "/canned", "/alerts", "/reports"] {
        assert_eq!(bo.get(page).await.status, StatusCode::FORBIDDEN, "{page}");
    }
    assert_eq!(bo.get("/notices").await.status, StatusCode::OK, "agents read notices");
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/agents".into(), vec![("action", "create"), ("name", "eve"), ("password", "longenough"), ("role", "admin")]),
        ("/canned".into(), vec![("action", "create"), ("title", "t"), ("body", "b")]),
        ("/notices".into(), vec![("title", "t"), ("text", "x"), ("state", "investigating")]),
        ("/notices/1".into(), vec![("action", "resolve")]),
        ("/alerts/1/notice".into(), vec![("title", "t"), ("text", "x"), ("state", "investigating")]),
        (format!("/tickets/{id}/takeover"), vec![]),
    ];
    for (path, fields) in &posts {
        let r = bo.submit("/", path, fields).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.body);
    }
    assert!(s.state.store.agent_by_name("eve").await.unwrap().is_none());
    assert!(s.state.store.notices(false).await.unwrap().is_empty());

    let mut ada = Client::new(&s);
    ada.login("ada").await;
    for page in ["/agents", "/canned", "/alerts", "/reports", "/notices"] {
        assert_eq!(ada.get(page).await.status, StatusCode::OK, "{page}");
    }
}

/// Every agent has an Account page: the chat accounts linked to them, and a link code shown once.
#[tokio::test]
async fn an_agent_gets_a_link_code_on_the_account_page() {
    let s = setup().await;
    let mut bo = Client::new(&s);
    bo.login("bo").await;
    assert!(bo.get("/").await.body.contains("href=\"/account\""), "the page is in everyone's navigation");
    let page = bo.get("/account").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("No chat account is linked to you."), "{}", page.body);
    assert!(!page.body.contains("/link "), "no code until asked for");
    let shown = bo.submit("/account", "/account", &[]).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    let code = shown.body.split("<code id=\"link-command\">/link ").nth(1).and_then(|r| r.split('<').next()).unwrap();
    let hash = webcare_app::staff::link_code_hash(code);
    let bo_id = s.state.store.agent_by_name("bo").await.unwrap().unwrap().id;
    let linked =
        s.state.store.redeem_chat_link_code(&hash, webcare_domain::Platform::Discord, "81", chrono::Utc::now());
    assert_eq!(linked.await.unwrap(), Some(bo_id));
    let page = bo.get("/account").await;
    assert!(page.body.contains("<li>discord user 81<form"), "{}", page.body);
    assert!(!page.body.contains(code), "the code is shown once");
    // Another agent sees only their own links, and cannot unlink bo's.
    let mut cy = Client::new(&s);
    cy.login("cy").await;
    assert!(cy.get("/account").await.body.contains("No chat account is linked to you."));
    let unlink = [("action", "unlink"), ("platform", "discord"), ("user", "81")];
    assert_eq!(cy.submit("/account", "/account", &unlink).await.status, StatusCode::NOT_FOUND);
    let store = &s.state.store;
    assert_eq!(store.agent_by_chat_account(webcare_domain::Platform::Discord, "81").await.unwrap().unwrap().id, bo_id);
    // Bo unlinks it (a lost phone): the account acts for nobody.
    assert_eq!(bo.submit("/account", "/account", &unlink).await.status, StatusCode::SEE_OTHER);
    assert!(store.agent_by_chat_account(webcare_domain::Platform::Discord, "81").await.unwrap().is_none());
    assert!(bo.get("/account").await.body.contains("No chat account is linked to you."));
}

#[tokio::test]
async fn unknown_ids_are_404_and_big_bodies_413() {
    let s = setup().await;
    customer_writes(&s, "Eva", BILLING).await;
    let id = only_ticket(&s).await.id;
    let mut ada = Client::new(&s);
    ada.login("ada").await;
    for page in ["/tickets/999", "/tickets/abc", "/tickets/0", "/notices/999", "/notices/-1"] {
        let r = ada.get(page).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{page}");
        assert!(r.body.contains("the id is unknown"));
    }
    for (path, fields) in [
        ("/tickets/999/claim".to_owned(), vec![]),
        (format!("/tickets/{id}/launch"), vec![]),
        (format!("/tickets/{id}/canned"), vec![("canned", "999")]),
        (format!("/tickets/{id}/notice"), vec![("notice", "999")]),
        ("/notices/999".to_owned(), vec![("action", "resolve")]),
        ("/alerts/999/notice".to_owned(), vec![("title", "t"), ("text", "x"), ("state", "investigating")]),
        ("/agents".to_owned(), vec![("action", "role"), ("id", "999"), ("role", "admin")]),
        ("/canned".to_owned(), vec![("action", "delete"), ("id", "999")]),
    ] {
        let r = ada.submit("/", &path, &fields).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.body);
    }
    let csrf = ada.get("/").await.csrf();
    let huge = "x".repeat(100 * 1024);
    let r = ada.post(&format!("/tickets/{id}/note"), &[("csrf", &csrf), ("text", &huge)]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(s.state.store.ticket_events(id).await.unwrap().iter().all(|e| e.body != huge));
    let r = Client::new(&s).post("/login", &[("name", &huge)]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn markup_from_the_web_chat_is_shown_as_text() {
    let s = setup().await;
    let name = "<img src=x onerror=alert(3)>";
    customer_writes(&s, name, &format!("{BILLING} {INJECTION}")).await;
    let id = only_ticket(&s).await.id;
    let mut bo = Client::new(&s);
    bo.login("bo").await;
    let queue = bo.get("/").await;
    let ticket = bo.get(&format!("/tickets/{id}")).await;
    for page in [&queue, &ticket] {
        assert!(!page.body.contains("<script>alert") && !page.body.contains("<img src=x"), "{}", page.body);
        assert!(page.body.contains("&lt;img src=x onerror=alert(3)&gt;"), "the name is shown as text");
    }
    assert!(ticket.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"));
    // The only scripts on a page are the console's own file.
    assert_eq!(ticket.body.matches("<script").count(), 1);
    assert!(ticket.body.contains("<script src=\"/console/console.js\" defer></script>"));
    let js = bo.get("/console/console.js").await;
    assert!(js.headers[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/javascript"));
    assert!(!js.body.contains("innerHTML") && js.body.contains("DOMParser"));
    assert_eq!(bo.get("/console/console.css").await.status, StatusCode::OK);

    // An agent's own markup is text as well, in the console and in the customer's chat.
    let r = bo.submit(&format!("/tickets/{id}"), &format!("/tickets/{id}/note"), &[("text", "<b>bold</b> note")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(bo.get(&format!("/tickets/{id}")).await.body.contains("&lt;b&gt;bold&lt;/b&gt; note"));
}

#[tokio::test]
async fn an_agent_claims_replies_and_notes_and_the_customer_sees_only_the_reply() {
    let s = setup().await;
    let conversation = customer_writes(&s, "Eva", BILLING).await;
    s.delivery.step().await.unwrap();
    let id = only_ticket(&s).await.id;
    let page = format!("/tickets/{id}");
    let mut bo = Client::new(&s);
    bo.login("bo").await;
    let queue = bo.get("/").await;
    assert!(queue.body.contains(&format!("href=\"/tickets/{id}\"")) && queue.body.contains("Eva"));
    let view = bo.get(&page).await;
    assert_eq!(view.status, StatusCode::OK);
    assert!(view.body.contains(BILLING) && view.body.contains("id=\"claim\""));

    assert_eq!(bo.submit(&page, &format!("{page}/claim"), &[]).await.status, StatusCode::SEE_OTHER);
    let view = bo.get(&page).await;
    assert!(view.body.contains("<dd id=\"holder\">bo</dd>"), "the holder is shown");
    assert!(view.body.contains("id=\"release\""));

    // Another agent cannot claim it and learns who holds it.
    let mut cy = Client::new(&s);
    cy.login("cy").await;
    let r = cy.submit(&page, &format!("{page}/claim"), &[]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body.contains("This ticket is claimed by bo."), "{}", r.body);
    assert!(!cy.get(&page).await.body.contains("id=\"claim\""));

    bo.submit(&page, &format!("{page}/note"), &[("text", "Klant belt ook, check factuur 2024-11")]).await;
    let r = bo.submit(&page, &format!("{page}/reply"), &[("text", "Dag Eva, we zetten het recht.")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = bo.submit(&page, &format!("{page}/reply"), &[("text", "   ")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "an empty reply");
    s.delivery.step().await.unwrap();
    let lines = chat_transcript(&s, &conversation).await;
    let texts: Vec<&str> = lines.iter().map(|l| l["text"].as_str().unwrap()).collect();
    assert!(texts.contains(&"Dag Eva, we zetten het recht."), "{texts:?}");
    assert!(!texts.iter().any(|t| t.contains("check factuur")), "notes never leave: {texts:?}");
    let view = bo.get(&page).await;
    assert!(view.body.contains("Note by bo") && view.body.contains("Dag Eva, we zetten het recht."));

    // State changes, and the admin's take-over.
    let r = bo.submit(&page, &format!("{page}/state"), &[("state", "pending")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(s.state.store.ticket(id).await.unwrap().state, TicketState::Pending);
    let r = bo.submit(&page, &format!("{page}/state"), &[("state", "sleeping")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut ada = Client::new(&s);
    ada.login("ada").await;
    assert!(ada.get(&page).await.body.contains("id=\"takeover\""));
    assert_eq!(ada.submit(&page, &format!("{page}/takeover"), &[]).await.status, StatusCode::SEE_OTHER);
    assert!(ada.get(&page).await.body.contains("<dd id=\"holder\">ada</dd>"));
    let bo_id = s.state.store.agent_by_name("bo").await.unwrap().unwrap().id;
    let r = ada.submit(&page, &format!("{page}/assign"), &[("agent", &bo_id.0.to_string())]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(s.state.store.ticket(id).await.unwrap().assignee, Some(bo_id));

    // The queue filters.
    assert!(bo.get("/?state=pending&assignee=me").await.body.contains(&format!("href=\"/tickets/{id}\"")));
    assert!(!bo.get("/?state=new").await.body.contains(&format!("href=\"/tickets/{id}\"")));
    assert!(!bo.get("/?category=outage").await.body.contains(&format!("href=\"/tickets/{id}\"")));
    assert!(
        bo.get("/?platform=webchat&category=billing&state=all").await.body.contains(&format!("href=\"/tickets/{id}\""))
    );
    assert!(!bo.get("/?platform=discord").await.body.contains(&format!("href=\"/tickets/{id}\"")));
}

#[tokio::test]
async fn admins_manage_canned_replies_that_agents_send_with_the_name_filled_in() {
    let s = setup().await;
    let conversation = customer_writes(&s, "Eva", BILLING).await;
    let id = only_ticket(&s).await.id;
    let mut ada = Client::new(&s);
    ada.login("ada").await;
    let r = ada
        .submit(
            "/canned",
            "/canned",
            &[
                ("action", "create"),
                ("title", "Factuur"),
                ("body", "Hoi {name}, je factuur is aangepast. Groet, {agent}"),
            ],
        )
        .await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/canned"));
    let r = ada.submit("/canned", "/canned", &[("action", "create"), ("title", "Factuur"), ("body", "dubbel")]).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "titles are unique");
    let canned = s.state.store.canned_replies().await.unwrap();
    assert_eq!(canned.len(), 1);
    let cid = canned[0].id.0.to_string();
    assert!(ada.get("/canned").await.body.contains("Hoi {name}, je factuur is aangepast."));

    let mut bo = Client::new(&s);
    bo.login("bo").await;
    let page = format!("/tickets/{id}");
    assert!(bo.get(&page).await.body.contains("id=\"canned-select\""));
    let r = bo.submit(&page, &format!("{page}/canned"), &[("canned", &cid)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    s.delivery.step().await.unwrap();
    let lines = chat_transcript(&s, &conversation).await;
    assert!(lines.iter().any(|l| l["text"] == "Hoi Eva, je factuur is aangepast. Groet, bo"), "{lines:?}");

    let r = ada
        .submit("/canned", "/canned", &[("action", "update"), ("id", &cid), ("title", "Factuur"), ("body", "Nieuw")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(s.state.store.canned_replies().await.unwrap()[0].body, "Nieuw");
    let r = ada.submit("/canned", "/canned", &[("action", "delete"), ("id", &cid)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(s.state.store.canned_replies().await.unwrap().is_empty());
}

#[tokio::test]
async fn admins_publish_update_and_resolve_notices_and_agents_are_offered_their_text() {
    let s = setup().await;
    let mut ada = Client::new(&s);
    ada.login("ada").await;
    let r = ada
        .submit(
            "/notices",
            "/notices",
            &[
                ("title", "Storing internet Utrecht"),
                ("text", "We werken aan een internetstoring in Utrecht."),
                ("service", "internet"),
                ("regions", "Utrecht"),
                ("state", "investigating"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let notice_page = r.location().to_owned();
    let notice = s.state.store.notices(true).await.unwrap().pop().unwrap();
    assert_eq!(notice_page, format!("/notices/{}", notice.id));
    assert_eq!((notice.regions.clone(), notice.version), (vec!["Utrecht".to_owned()], 1));
    let view = ada.get(&notice_page).await;
    assert!(
        view.body.contains("We werken aan een internetstoring in Utrecht.") && view.body.contains("id=\"subscribers\"")
    );
    let list = ada.get("/notices").await;
    assert!(list.body.contains("Storing internet Utrecht") && list.body.contains("sent, 0 pending"));
    let r = ada.submit("/notices", "/notices", &[("title", ""), ("text", "x"), ("state", "investigating")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A customer asking about it is answered from it and subscribed.
    let conversation = customer_writes(&s, "Eva", "Is er een storing in Utrecht? Geen internet sinds 10 uur").await;
    s.delivery.step().await.unwrap();
    let lines = chat_transcript(&s, &conversation).await;
    assert!(
        lines.iter().any(|l| l["text"].as_str().unwrap().contains("We werken aan een internetstoring")),
        "{lines:?}"
    );
    assert!(ada.get(&notice_page).await.body.contains("<dd id=\"subscribers\">1</dd>"));

    // An update is a new version that reaches the subscriber.
    let r = ada
        .submit(
            &notice_page,
            &notice_page,
            &[
                ("action", "update"),
                ("text", "Monteurs zijn onderweg."),
                ("service", "internet"),
                ("regions", "Utrecht"),
                ("state", "identified"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    s.delivery.step().await.unwrap();
    let lines = chat_transcript(&s, &conversation).await;
    assert!(lines.iter().any(|l| l["text"].as_str().unwrap().contains("Monteurs zijn onderweg.")));

    let r = ada.submit(&notice_page, &notice_page, &[("action", "resolve")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(s.state.store.notices(true).await.unwrap().is_empty(), "resolved");
    let versions = s.state.store.notice_versions(notice.id).await.unwrap();
    assert_eq!(versions.len(), 3);
    let ada_id = s.state.store.agent_by_name("ada").await.unwrap().unwrap().id;
    assert!(versions.iter().all(|v| v.author == Some(ada_id)), "every version records its author");
}

/// Under four eyes a published notice's new words wait on its page for another admin; customers keep the approved
/// ones, and a change of state alone (the form sends the unchanged text along) goes out at once.
#[tokio::test]
async fn under_four_eyes_a_new_text_waits_on_the_notice_page_for_another_admin() {
    let mut s = setup().await;
    s.state.notices = Arc::new(webcare_app::notices::Notices::detached(s.state.store.clone(), true));
    s.router = webcare_web::router(s.state.clone());
    let hash = webcare_web::auth::hash_password("dee-secret").unwrap();
    let new = NewAgent { name: "dee".into(), role: Role::Admin, password_hash: Some(hash), at: chrono::Utc::now() };
    s.state.store.create_agent(new).await.unwrap();
    let (mut ada, mut dee) = (Client::new(&s), Client::new(&s));
    ada.login("ada").await;
    dee.login("dee").await;
    let fields = [
        ("title", "Storing internet Utrecht"),
        ("text", "We werken aan een internetstoring in Utrecht."),
        ("service", "internet"),
        ("regions", "Utrecht"),
        ("state", "investigating"),
    ];
    let r = ada.submit("/notices", "/notices", &fields).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let page = r.location().to_owned();
    let id = s.state.store.notices(false).await.unwrap()[0].id;
    assert_eq!(dee.submit(&page, &page, &[("action", "approve")]).await.status, StatusCode::SEE_OTHER);
    assert!(s.state.store.notice(id).await.unwrap().is_active());

    let update = |text: &'static str, state: &'static str| {
        [("action", "update"), ("text", text), ("service", "internet"), ("regions", "Utrecht"), ("state", state)]
    };
    let r = ada.submit(&page, &page, &update("Monteurs zijn onderweg.", "identified")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let notice = s.state.store.notice(id).await.unwrap();
    assert_eq!((notice.version, notice.text.as_str()), (2, "We werken aan een internetstoring in Utrecht."));
    let view = dee.get(&page).await.body;
    assert!(view.contains("id=\"proposal\"") && view.contains("Monteurs zijn onderweg."), "{view}");
    assert!(view.contains("written by ada") && view.contains("id=\"approve-change\""), "{view}");
    // The form sends the approved text along with a new state: that goes out at once.
    let r = dee.submit(&page, &page, &update("We werken aan een internetstoring in Utrecht.", "monitoring")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(s.state.store.notice(id).await.unwrap().version, 3);
    let r = ada.submit(&page, &page, &[("action", "approve")]).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "the author does not approve their own words: {}", r.body);
    assert_eq!(dee.submit(&page, &page, &[("action", "approve")]).await.status, StatusCode::SEE_OTHER);
    let notice = s.state.store.notice(id).await.unwrap();
    assert_eq!((notice.version, notice.text.as_str()), (4, "Monteurs zijn onderweg."));
    assert!(!dee.get(&page).await.body.contains("id=\"proposal\""), "nothing waits any more");
}

#[tokio::test]
async fn the_covering_notice_is_offered_on_an_outage_ticket() {
    let s = setup().await;
    // The customer asks for a person about an outage before any notice exists: the button opens a ticket.
    let conversation = customer_writes(&s, "Eva", "Storing in Utrecht? Geen internet sinds 10 uur").await;
    let press = json!({"conversation": conversation, "id": "m2", "button": "talk_to_person"});
    let response = s
        .router
        .clone()
        .oneshot(
            Request::post("/chat/api/messages")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(press.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let ticket = only_ticket(&s).await;
    let mut ada = Client::new(&s);
    ada.login("ada").await;
    ada.submit(
        "/notices",
        "/notices",
        &[
            ("title", "Storing"),
            ("text", "Internet ligt eruit in Utrecht."),
            ("service", "internet"),
            ("regions", "Utrecht"),
            ("state", "identified"),
        ],
    )
    .await;
    ada.submit(
        "/notices",
        "/notices",
        &[
            ("title", "Tv Gent"),
            ("text", "Tv-storing in Gent."),
            ("service", "tv"),
            ("regions", "Gent"),
            ("state", "identified"),
        ],
    )
    .await;
    let page = format!("/tickets/{}", ticket.id);
    let view = ada.get(&page).await;
    assert!(
        view.body.contains("Active notice") && view.body.contains("Internet ligt eruit in Utrecht."),
        "{}",
        view.body
    );
    assert!(!view.body.contains("Tv-storing in Gent."), "a notice for another service and region is not offered");
    let notice = s.state.store.notices(true).await.unwrap().into_iter().find(|n| n.title == "Storing").unwrap();
    let r = ada.submit(&page, &format!("{page}/notice"), &[("notice", &notice.id.0.to_string())]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    s.delivery.step().await.unwrap();
    let lines = chat_transcript(&s, &conversation).await;
    assert!(lines.iter().any(|l| l["text"].as_str().unwrap().contains("Internet ligt eruit in Utrecht.")), "{lines:?}");
}

#[tokio::test]
async fn admins_create_agents_change_roles_and_deactivate() {
    let s = setup().await;
    let mut ada = Client::new(&s);
    ada.login("ada").await;
    let r = ada
        .submit(
            "/agents",
            "/agents",
            &[("action", "create"), ("name", "<i>dee</i>"), ("password", "dee-secret"), ("role", "agent")],
        )
        .await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/agents"));
    assert!(ada.get("/agents").await.body.contains("&lt;i&gt;dee&lt;/i&gt;"));
    let r = ada
        .submit(
            "/agents",
            "/agents",
            &[("action", "create"), ("name", "short"), ("password", "1234"), ("role", "agent")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = ada
        .submit(
            "/agents",
            "/agents",
            &[("action", "create"), ("name", "bo"), ("password", "long-enough"), ("role", "agent")],
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);

    let mut dee = Client::new(&s);
    let r = dee.try_login("<i>dee</i>", "dee-secret").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(dee.get("/agents").await.status, StatusCode::FORBIDDEN);
    let dee_id = s.state.store.agent_by_name("<i>dee</i>").await.unwrap().unwrap().id.0.to_string();

    // Promoted: the old session ends, and after logging in again dee is an admin.
    let r = ada.submit("/agents", "/agents", &[("action", "role"), ("id", &dee_id), ("role", "admin")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(dee.get("/").await.location(), "/login");
    assert_eq!(dee.try_login("<i>dee</i>", "dee-secret").await.status, StatusCode::SEE_OTHER);
    assert_eq!(dee.get("/agents").await.status, StatusCode::OK);

    // Deactivated: logged out and cannot log in.
    let r = ada.submit("/agents", "/agents", &[("action", "active"), ("id", &dee_id), ("active", "false")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(dee.get("/").await.location(), "/login");
    assert_eq!(dee.try_login("<i>dee</i>", "dee-secret").await.status, StatusCode::UNAUTHORIZED);

    // A new password works; admins cannot lock themselves out.
    let bo_id = s.state.store.agent_by_name("bo").await.unwrap().unwrap().id.0.to_string();
    ada.submit("/agents", "/agents", &[("action", "password"), ("id", &bo_id), ("password", "bo-new-secret")]).await;
    assert_eq!(Client::new(&s).try_login("bo", "bo-new-secret").await.status, StatusCode::SEE_OTHER);
    let ada_id = s.state.store.agent_by_name("ada").await.unwrap().unwrap().id.0.to_string();
    let r = ada.submit("/agents", "/agents", &[("action", "role"), ("id", &ada_id), ("role", "agent")]).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn reports_alerts_and_live_updates() {
    let s = setup().await;
    customer_writes(&s, "Eva", BILLING).await;
    let mut ada = Client::new(&s);
    ada.login("ada").await;
    let reports = ada.get("/reports").await;
    assert_eq!(reports.status, StatusCode::OK);
    assert!(reports.body.contains("<svg") && reports.body.contains("Messages per category per hour"));
    assert!(reports.body.contains("Tickets per state") && reports.body.contains("First-response times"));
    assert!(reports.body.contains("1 messages in the last 30 days"), "{}", reports.body);
    assert!(ada.get("/alerts").await.body.contains("No spike alerts."));

    // The queue's event stream says `changed` when a new ticket arrives.
    let mut request = Request::get("/console/events?queue=1").body(Body::empty()).unwrap();
    let cookie = ada.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
    request.headers_mut().insert(header::COOKIE, cookie.parse().unwrap());
    let response = s.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = response.into_body().into_data_stream();
    customer_writes(&s, "Fer", "Ik wil mijn contract opzeggen, hoe gaat dat?").await;
    let changed = tokio::time::timeout(Duration::from_secs(20), async {
        use futures_util::StreamExt as _;
        let mut seen = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
            if seen.contains("event: changed") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(changed, Ok(true), "a change reaches the open queue");
}

#[tokio::test]
async fn an_alert_shows_what_became_of_its_cluster() {
    let s = setup().await;
    let store = s.state.store.clone();
    let now = chrono::Utc::now();
    let mut alerts = Vec::new();
    for region in ["Utrecht", "Leiden", "Gent"] {
        let alert = crate::alerts::raise(store.as_ref(), Service::Internet, Some(region), now).await;
        alerts.push((alert.id, alert.cluster));
    }
    // Utrecht's cluster was answered by a notice published by hand; Leiden's expired; Gent's is still open.
    let notice = store.create_notice(crate::storage::new_notice(&["Utrecht"], now)).await.unwrap();
    store.close_cluster(alerts[0].1, Some(notice.id), now).await.unwrap();
    store.close_cluster(alerts[1].1, None, now).await.unwrap();
    let mut ada = Client::new(&s);
    ada.login("ada").await;
    let page = ada.get("/alerts").await.body;
    let form = |alert: webcare_domain::AlertId| format!("action=\"/alerts/{alert}/notice\"");
    assert!(page.contains(&format!("its customers follow <a href=\"/notices/{}\">", notice.id)), "{page}");
    assert!(!page.contains(&form(alerts[0].0)), "an answered cluster needs no second notice: {page}");
    assert!(page.contains("Expired without a notice: its customers got tickets."), "{page}");
    assert!(page.contains(&form(alerts[1].0)) && page.contains(&form(alerts[2].0)), "{page}");
}

#[tokio::test]
async fn alerts_show_where_their_webhook_post_stands() {
    let s = setup().await;
    let store = s.state.store.clone();
    let now = chrono::Utc::now();
    let mut ids = Vec::new();
    for service in [Service::Internet, Service::Tv, Service::Mobile, Service::Landline] {
        let cluster = store
            .create_cluster(webcare_domain::NewCluster { account: String::new(), service, region: None, at: now })
            .await
            .unwrap();
        let alert = webcare_domain::SpikeAlert {
            id: webcare_domain::AlertId(0),
            cluster: cluster.id,
            account: String::new(),
            service,
            region: None,
            count: 5,
            samples: vec!["geen internet".into()],
            draft: Default::default(),
            first_at: now,
            last_at: now,
            created_at: now,
        };
        ids.push(store.insert_alert(&alert).await.unwrap().id);
    }
    let claimed = store.claim_alert_webhooks("n", now, Duration::from_secs(60), 3).await.unwrap();
    assert_eq!(claimed.len(), 3, "the landline alert stays waiting");
    store.mark_alert_posted(ids[0], "n", "internet", now).await.unwrap();
    store.mark_alert_failed(ids[1], "n", "tv", "HTTP 404 Not Found: <b>no_service</b>").await.unwrap();
    store.mark_alert_retry(ids[2], "n", "default", now, "HTTP 503 Service Unavailable").await.unwrap();
    let mut ada = Client::new(&s);
    ada.login("ada").await;
    let page = ada.get("/alerts").await.body;
    assert!(page.contains("Webhook (internet): posted "), "{page}");
    assert!(page.contains("Webhook (tv): failed: HTTP 404 Not Found: &lt;b&gt;no_service&lt;/b&gt;"), "{page}");
    assert!(page.contains("Webhook (default): failing after 1 attempt, next try"), "{page}");
    assert!(page.contains("HTTP 503 Service Unavailable"), "{page}");
    assert!(page.contains("Webhook: waiting to be posted"), "{page}");
}

/// An admin finds why a message was answered as it was: the list by what was done, the message's decision with its
/// rule, scores and terms, and how the data loaded now reads it, before and after the data changes.
#[tokio::test]
async fn admins_see_why_each_message_was_answered_and_how_the_data_loaded_now_reads_it() {
    let s = setup().await;
    let notice =
        s.state.store.create_notice(crate::storage::new_notice(&["Utrecht"], chrono::Utc::now())).await.unwrap();
    customer_writes(&s, "Eva", "Storing in Utrecht? Geen internet sinds vanochtend").await;
    customer_writes(&s, "Fer", BILLING).await;
    customer_writes(&s, "Gijs", INJECTION).await;
    let tickets = s.state.store.tickets(&[]).await.unwrap();
    let ticket = tickets.iter().find(|t| t.category == "billing").expect("the bill is a ticket").clone();
    let mut ada = Client::new(&s);
    ada.login("ada").await;

    let list = ada.get("/messages").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.body.contains("Storing in Utrecht?") && list.body.contains("Mijn factuur"), "{}", list.body);
    assert!(list.body.contains("&lt;script&gt;alert(1)") && !list.body.contains(INJECTION), "escaped");
    assert!(list.body.contains(&format!("<a href=\"/notices/{0}\">notice {0}</a>", notice.id)), "{}", list.body);
    assert!(list.body.contains(&format!("<a href=\"/tickets/{0}\">ticket {0}</a>", ticket.id)), "{}", list.body);
    assert!(list.body.contains("notice-match"), "the rule that answered it: {}", list.body);
    let answered = ada.get("/messages?action=auto_answer&platform=webchat").await.body;
    assert!(answered.contains("Storing in Utrecht?") && !answered.contains("Mijn factuur"), "{answered}");
    assert!(ada.get("/messages?q=FACTUUR").await.body.contains("Mijn factuur"));
    assert!(ada.get("/messages?intent=other&action=hold_and_subscribe").await.body.contains("No messages match."));
    let bad = ada.get("/messages?action=answered").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body.contains("unknown action `answered`"), "{}", bad.body);
    let notice_page = ada.get(&format!("/notices/{}", notice.id)).await.body;
    assert!(notice_page.contains(&format!("href=\"/messages?notice={}\"", notice.id)), "{notice_page}");
    assert!(ada.get(&format!("/tickets/{}", ticket.id)).await.body.contains("class=\"why\" href=\"/messages/"));

    // A held question's page says what became of its cluster since.
    customer_writes(&s, "Hans", "Geen tv in Zeist, al een uur").await;
    let held = s.state.store.inbound_page(&Default::default(), 1).await.unwrap().remove(0);
    let cluster = webcare_app::messages::why(held.decision.as_ref().unwrap()).cluster.expect("held in a cluster");
    let page = ada.get(&format!("/messages/{}", held.id)).await.body;
    assert!(page.contains("hold_and_subscribe") && page.contains("open: customer waiting for a notice"), "{page}");
    s.state.store.close_cluster(webcare_domain::ClusterId(cluster), None, chrono::Utc::now()).await.unwrap();
    let page = ada.get(&format!("/messages/{}", held.id)).await.body;
    assert!(page.contains("expired without a notice: its customers got tickets"), "{page}");
    assert!(!page.contains("This customer's tickets"), "Hans has none yet: {page}");
    let bill = s.state.store.inbound_page(&Default::default(), 10).await.unwrap();
    let bill = bill.iter().find(|m| m.text == BILLING).unwrap();
    let page = ada.get(&format!("/messages/{}", bill.id)).await.body;
    assert!(
        page.contains("This customer's tickets") && page.contains(&format!("href=\"/tickets/{}\"", ticket.id)),
        "{page}"
    );

    let outage = s.state.store.inbound_page(&Default::default(), 10).await.unwrap().pop().unwrap();
    assert!(outage.text.starts_with("Storing"), "{outage:?}");
    let page = ada.get(&format!("/messages/{}", outage.id)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("What webcare decided") && page.body.contains("rule notice-match"), "{}", page.body);
    assert!(page.body.contains("term “geen internet” in "), "{}", page.body);
    assert!(page.body.contains("scores: outage "), "{}", page.body);
    assert!(page.body.contains("The data loaded now reads it the same way."), "{}", page.body);

    // The data changes (as after an edited lexicon and a SIGHUP): the page says what is read differently now.
    let strict = webcare_bridge::Thresholds { outage: 100.0, ..Default::default() };
    s.pipeline.reload_classifier(Arc::new(webcare_bridge::Classifier::default().with_thresholds(strict))).await;
    let page = ada.get(&format!("/messages/{}", outage.id)).await.body;
    assert!(page.contains("The data loaded now reads it differently: intent "), "{page}");
    assert!(page.contains("(was outage)"), "{page}");
    let tried = ada.submit("/messages", "/messages/try", &[("text", "Geen tv in Zeist"), ("place", "")]).await;
    assert_eq!(tried.status, StatusCode::OK, "{}", tried.body);
    assert!(
        tried.body.contains("With the data loaded now") && tried.body.contains("service tv from"),
        "{}",
        tried.body
    );
    let empty = ada.submit("/messages", "/messages/try", &[("text", "  ")]).await;
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);

    // Every instance is asked to read its data files again.
    let reloading = ada.submit("/messages", "/messages/reload", &[]).await;
    assert_eq!(reloading.status, StatusCode::OK, "{}", reloading.body);
    assert!(reloading.body.contains("Reload request 1: every running instance"), "{}", reloading.body);
    assert_eq!(s.state.store.reload_generation(webcare_app::intake::RELOAD_BRIDGE_DATA).await.unwrap(), 1);

    let mut bo = Client::new(&s);
    bo.login("bo").await;
    assert_eq!(bo.submit("/", "/messages/reload", &[]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(s.state.store.reload_generation(webcare_app::intake::RELOAD_BRIDGE_DATA).await.unwrap(), 1);
    assert_eq!(bo.get("/messages").await.status, StatusCode::FORBIDDEN);
    assert_eq!(bo.get(&format!("/messages/{}", outage.id)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(bo.submit("/", "/messages/try", &[("text", "storing?")]).await.status, StatusCode::FORBIDDEN);
    assert!(!bo.get(&format!("/notices/{}", notice.id)).await.body.contains("/messages?notice="));
    assert!(!bo.get(&format!("/tickets/{}", ticket.id)).await.body.contains("class=\"why\""));
    assert_eq!(ada.get("/messages/999").await.status, StatusCode::NOT_FOUND);
}

/// Agents find a ticket from the queue's search (by words the customer wrote, their name, or the number), and a
/// ticket's page lists the customer's other tickets.
#[tokio::test]
async fn the_queue_finds_tickets_by_words_name_and_number_and_a_ticket_shows_the_customers_others() {
    let s = setup().await;
    customer_writes(&s, "Eva Jansen", BILLING).await;
    customer_writes(&s, "Fer", "Ik wil mijn contract opzeggen, hoe gaat dat?").await;
    let eva = s.state.store.tickets(&[]).await.unwrap().into_iter().find(|t| t.category == "billing").unwrap();
    let mut bo = Client::new(&s);
    bo.login("bo").await;
    let found = |body: &str, subject: &str| body.contains(&webcare_web::console::escape(subject));
    for q in ["dubbel", "JANSEN", &format!("%23{}", eva.id)] {
        let page = bo.get(&format!("/?q={q}")).await.body;
        assert!(found(&page, BILLING) && !page.contains("contract opzeggen"), "{q}: {page}");
    }
    let none = bo.get("/?q=storing&state=all").await.body;
    assert!(none.contains("No tickets match."), "{none}");
    let typed = bo.get("/?q=%3Cb%3E").await.body;
    assert!(typed.contains("value=\"&lt;b&gt;\"") && !typed.contains("value=\"<b>\""), "the search is shown escaped");

    // A ticket's page lists the customer's other tickets.
    let mut modem =
        crate::storage::new_ticket(eva.conversation, eva.customer, "Modem <kapot>", None, chrono::Utc::now());
    modem.category = "technical".into();
    let earlier = s.state.store.create_ticket(modem).await.unwrap();
    let page = bo.get(&format!("/tickets/{}", eva.id)).await.body;
    assert!(page.contains("Other tickets of Eva Jansen"), "{page}");
    // The agent sees which language to answer in: Eva wrote Dutch.
    assert!(page.contains("<dd id=\"customer-language\">Dutch (their messages)</dd>"), "{page}");
    assert!(page.contains(&format!("<a href=\"/tickets/{0}\">#{0}</a>", earlier.id)), "{page}");
    assert!(page.contains("Modem &lt;kapot&gt;"), "escaped: {page}");
    let fer = s.state.store.tickets(&[]).await.unwrap().into_iter().find(|t| t.category == "contract").unwrap();
    assert!(!bo.get(&format!("/tickets/{}", fer.id)).await.body.contains("Other tickets of"), "Fer has only this one");
}

/// An admin adds a word to a lexicon group from the console; once the instance applies it (as `serve` does on the
/// reload request the change makes), the bridge reads texts with it; an undo brings the data files' word back.
#[tokio::test]
async fn an_admin_tunes_a_lexicon_from_the_console() {
    let s = setup().await;
    let mut ada = Client::new(&s);
    ada.login("ada").await;
    let page = ada.get("/lexicon").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<option value=\"nl/outage\">nl · outage (outage, weight 2)</option>"), "{}", page.body);
    assert!(page.body.contains("id=\"no-changes\""), "{}", page.body);
    // The regions too: a place's other names, and the place as a group to add one to.
    assert!(page.body.contains("<li>Utrecht (Utrecht (provincie)): utreg · stad utrecht · 030</li>"), "{}", page.body);
    assert!(
        page.body.contains(
            "<option value=\"regions/Utrecht\">regions · Utrecht (other names, in Utrecht (provincie))</option>"
        ),
        "{}",
        page.body
    );
    let text = "Mijn glasvezel is kapot, wat nu?";
    let read = |body: &str| body.contains("<li>term “glasvezel is kapot” in outage (+2.0)</li>");
    let before = ada.submit("/messages", "/messages/try", &[("text", text)]).await;
    assert!(!read(&before.body), "not an outage before the change: {}", before.body);

    // Tried first on what customers wrote: the stored question would read as an outage; nothing is changed.
    customer_writes(&s, "Klant", text).await;
    customer_writes(&s, "Ander", "Mijn factuur is te hoog").await;
    let tried = ada
        .submit(
            "/lexicon",
            "/lexicon",
            &[("action", "try"), ("group", "nl/outage"), ("term", "glasvezel is kapot"), ("edit", "add")],
        )
        .await;
    assert_eq!(tried.status, StatusCode::OK, "{}", tried.body);
    assert!(tried.body.contains("of the latest 2 stored messages, 1 would be read differently:"), "{}", tried.body);
    assert!(tried.body.contains("intent outage (was "), "{}", tried.body);
    assert!(tried.body.contains(&format!("<td class=\"text\">{text}</td>")), "{}", tried.body);
    assert!(!tried.body.contains("Mijn factuur"), "only what changes: {}", tried.body);
    assert!(s.state.store.lexicon_changes().await.unwrap().is_empty(), "trying keeps nothing");
    assert_eq!(s.state.store.reload_generation(webcare_app::intake::RELOAD_BRIDGE_DATA).await.unwrap(), 0);
    let changed = ada
        .submit(
            "/lexicon",
            "/lexicon",
            &[("action", "change"), ("group", "nl/outage"), ("term", "glasvezel is kapot"), ("edit", "add")],
        )
        .await;
    assert_eq!((changed.status, changed.location()), (StatusCode::SEE_OTHER, "/lexicon"), "{}", changed.body);
    assert_eq!(s.state.store.reload_generation(webcare_app::intake::RELOAD_BRIDGE_DATA).await.unwrap(), 1);
    let listed = ada.get("/lexicon").await;
    assert!(
        listed.body.contains("<td>glasvezel is kapot</td><td>add</td><td>nl · outage</td><td>ada</td>"),
        "{}",
        listed.body
    );
    // The instance applies it, as `serve` does when it sees the reload request.
    let apply = || async {
        let changes = s.state.store.lexicon_changes().await.unwrap();
        let data = webcare_bridge::ClassifierData::embedded().unwrap();
        let classifier = webcare_app::lexicon::classifier(&data, std::path::Path::new("<embedded>"), &changes).unwrap();
        s.pipeline.reload_classifier(Arc::new(classifier)).await;
    };
    apply().await;
    let after = ada.submit("/messages", "/messages/try", &[("text", text)]).await;
    assert!(read(&after.body), "an outage with the new term: {}", after.body);
    assert!(after.body.contains("<dt>Intent</dt><dd>outage</dd>"), "{}", after.body);
    assert!(!before.body.contains("<dt>Intent</dt><dd>outage</dd>"), "{}", before.body);
    assert!(ada.get("/lexicon").await.body.contains("glasvezel is kapot · "), "the group lists it");

    // Bad input is named, and changes nothing.
    for (fields, status, says) in [
        (
            vec![("group", "nl/outage"), ("term", "glasvezel is kapot"), ("edit", "add")],
            StatusCode::CONFLICT,
            "already",
        ),
        (vec![("group", "nl/gas"), ("term", "lek"), ("edit", "add")], StatusCode::UNPROCESSABLE_ENTITY, "no group"),
        (vec![("group", "nl/outage"), ("term", "?! *"), ("edit", "add")], StatusCode::UNPROCESSABLE_ENTITY, "letters"),
    ] {
        let mut all = vec![("action", "change")];
        all.extend(fields);
        let r = ada.submit("/lexicon", "/lexicon", &all).await;
        assert_eq!(r.status, status, "{all:?}: {}", r.body);
        assert!(r.body.contains(says), "{all:?}: {}", r.body);
    }
    assert_eq!(s.state.store.lexicon_changes().await.unwrap().len(), 1);

    let mut bo = Client::new(&s);
    bo.login("bo").await;
    assert_eq!(bo.get("/lexicon").await.status, StatusCode::FORBIDDEN);
    let id = s.state.store.lexicon_changes().await.unwrap()[0].id.to_string();
    assert_eq!(bo.submit("/", "/lexicon", &[("action", "undo"), ("id", &id)]).await.status, StatusCode::FORBIDDEN);

    let undone = ada.submit("/lexicon", "/lexicon", &[("action", "undo"), ("id", &id)]).await;
    assert_eq!(undone.status, StatusCode::SEE_OTHER, "{}", undone.body);
    apply().await;
    assert!(!read(&ada.submit("/messages", "/messages/try", &[("text", text)]).await.body), "the files' word again");
    assert_eq!(
        ada.submit("/lexicon", "/lexicon", &[("action", "undo"), ("id", &id)]).await.status,
        StatusCode::NOT_FOUND
    );
}
