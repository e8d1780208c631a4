//! Live updates: `/console/events?queue=1` and `/console/events?ticket={id}` send a `changed` event whenever the
//! queue or the ticket changes, and the page refetches its `#live` area (see `assets/console.js`).
//!
//! Changes are found by comparing a fingerprint read from the store every [`POLL`], not by listening to this
//! process: a ticket changed by another webcare instance, by the REST API or by a customer's message shows up
//! the same way.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use webcare_domain::{TicketFilter, TicketId, TicketState};

use super::Staff;
use crate::AppState;

/// How often an open page's data is compared with the store.
const POLL: Duration = Duration::from_millis(1500);

#[derive(Debug, Deserialize)]
pub struct Which {
    #[serde(default)]
    ticket: Option<i64>,
}

/// What the page shows, reduced to a string that changes whenever the page would.
async fn fingerprint(state: &AppState, ticket: Option<TicketId>) -> Option<String> {
    match ticket {
        Some(id) => {
            let t = state.store.ticket(id).await.ok()?;
            let (inbound, outbound) = state.store.transcript(t.conversation).await.ok()?;
            let sent = outbound.iter().map(|o| format!("{}:{}", o.id, o.state)).collect::<Vec<_>>().join(",");
            Some(format!("{}|{}|{}", t.version, inbound.len(), sent))
        }
        None => {
            let filter = TicketFilter {
                states: vec![TicketState::New, TicketState::Open, TicketState::Pending, TicketState::Solved],
                ..TicketFilter::default()
            };
            let tickets = state.store.find_tickets(&filter).await.ok()?;
            Some(tickets.iter().map(|t| format!("{}:{}", t.id, t.version)).collect::<Vec<_>>().join(","))
        }
    }
}

pub async fn events(State(state): State<AppState>, _staff: Staff, Query(which): Query<Which>) -> Response {
    let ticket = which.ticket.map(TicketId);
    let first = fingerprint(&state, ticket).await;
    let shutdown = state.shutdown.clone();
    let stream = futures_util::stream::unfold((state, first), move |(state, mut last)| {
        let shutdown = shutdown.clone();
        async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(POLL) => {}
                }
                let now = fingerprint(&state, ticket).await;
                if now.is_some() && now != last {
                    last = now;
                    return Some((Ok::<_, Infallible>(Event::default().event("changed").data("1")), (state, last)));
                }
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}
