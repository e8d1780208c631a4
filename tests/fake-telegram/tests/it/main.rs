//! Tests of the fake Telegram Bot API server through plain HTTP (reqwest), as a bot would use it.

mod common;
mod limits_and_faults;
mod methods;
mod shapes;
mod updates;
mod users;
