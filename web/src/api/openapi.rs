//! The OpenAPI document, built from the same route table the API serves. A test calls every route listed here.

use serde_json::{Value, json};

/// Every API route: method, path (OpenAPI style), whether it needs the admin role, and a summary.
pub const ROUTES: &[(&str, &str, bool, &str)] = &[
    ("get", "/api/v1/tickets", false, "List tickets, optionally by state (state=new,open,...) and text (q=)"),
    ("get", "/api/v1/tickets/{id}", false, "One ticket with its messages"),
    ("patch", "/api/v1/tickets/{id}", false, "Change state, priority or assignee"),
    ("post", "/api/v1/tickets/{id}/claim", false, "Claim a ticket; 409 with the holder's name when taken"),
    ("post", "/api/v1/tickets/{id}/replies", false, "Reply to the customer on their conversation"),
    ("post", "/api/v1/tickets/{id}/notes", false, "Add an internal note"),
    ("get", "/api/v1/notices", false, "List notices"),
    ("post", "/api/v1/notices", true, "Create a notice"),
    ("patch", "/api/v1/notices/{id}", true, "Change a notice: a new version every subscriber receives once"),
    ("get", "/api/v1/notices/{id}/delivery", false, "Broadcast progress of the current version"),
    ("get", "/api/v1/alerts", false, "Spike alerts, each with where its post to its service's webhook stands"),
    ("post", "/api/v1/alerts/{id}/notice", true, "Publish a notice from an alert; its cluster's members subscribe"),
    ("post", "/api/v1/me/chat-link", false, "A code that links a chat account to you: send /link CODE in a staff chat"),
    (
        "get",
        "/api/v1/reports",
        true,
        "Messages per day and category and per region, spike alerts, tickets, first-response times (days=30)",
    ),
    (
        "get",
        "/api/v1/messages",
        true,
        "Stored messages, newest first, with the decision and its reasons: action, intent, category, service, \
         platform, notice, cluster, ticket, q (text), hours, before, limit",
    ),
    ("get", "/api/v1/messages/{id}", true, "One message with its decision, and how the data loaded now reads it"),
    ("post", "/api/v1/reload", true, "Every running instance reads the bridge's data files again (202)"),
    ("get", "/api/v1/lexicon", true, "The lexicons' groups as the bridge counts them now, and the admins' changes"),
    (
        "post",
        "/api/v1/lexicon/changes",
        true,
        "Add a term to a group or take a listed one out ({language, group, term, edit: add|remove}); every instance \
         applies it within seconds (201)",
    ),
    ("delete", "/api/v1/lexicon/changes/{id}", true, "Take a lexicon change back (204)"),
];

fn error_responses(admin: bool) -> Value {
    let e = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let mut r = json!({"401": e("no or invalid token"), "404": e("unknown id"), "422": e("invalid input")});
    if admin {
        r["403"] = e("the admin role is needed");
    }
    r
}

pub fn document() -> Value {
    let mut paths = serde_json::Map::new();
    for (method, path, admin, summary) in ROUTES {
        let mut op = json!({"summary": summary, "security": [{"bearer": []}], "responses": error_responses(*admin)});
        op["responses"]["200"] = json!({"description": "OK"});
        if path.contains("{id}") {
            op["parameters"] = json!([{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}]);
        }
        if *path == "/api/v1/tickets" && *method == "get" {
            op["parameters"] = json!([
                {"name": "state", "in": "query", "required": false, "schema": {"type": "string"},
                 "description": "comma-separated: new, open, pending, solved, closed"},
                {"name": "q", "in": "query", "required": false, "schema": {"type": "string", "maxLength": 200},
                 "description": "words in the subject, the customer's name or what they wrote, or a ticket number"},
            ]);
        }
        if *path == "/api/v1/messages" {
            op["parameters"] = webcare_app::messages::KEYS
                .iter()
                .map(|k| json!({"name": k, "in": "query", "required": false, "schema": {"type": "string"}}))
                .collect();
        }
        if *path == "/api/v1/reports" {
            op["parameters"] = json!([{"name": "days", "in": "query", "required": false,
                "schema": {"type": "integer", "minimum": 1, "maximum": webcare_app::reports::MAX_DAYS, "default": 30}}]);
        }
        let bodiless = ["/claim", "/chat-link", "/reload"].iter().any(|end| path.ends_with(end));
        if ["post", "patch"].contains(method) && !bodiless {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "webcare API", "version": env!("CARGO_PKG_VERSION")},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}}
        }
    })
}
