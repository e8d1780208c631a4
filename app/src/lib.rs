//! webcare's application layer: where the platform adapters, the bridge, ticketing and storage meet.
//!
//! [`delivery`] sends the outbox through the platforms' [`webcare_domain::Sender`]s within their limits;
//! [`alerts`] posts spike alerts to a webhook per service through [`webcare_domain::AlertSink`]s.
//! Adapters depend only on the ports in `webcare-domain`; this crate implements and drives them.
//!
//! Architecture invariant: no serenity, teloxide, axum or sqlx type; state only through `Store`.

pub mod alerts;
pub mod delivery;
pub mod intake;
pub mod lexicon;
pub mod messages;
pub mod notices;
pub mod reports;
pub mod staff;
