//! Tests of the fake Discord server through plain HTTP (reqwest) and a plain WebSocket client
//! (tokio-tungstenite), as a bot would use it, plus a conformance test that parses everything the fake emits
//! with serenity 0.12's model types.

mod common;
mod conformance;
mod faults;
mod gateway;
mod limits;
mod rest;
mod serenity_client;
mod users;
