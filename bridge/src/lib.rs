//! Decides what happens to every inbound message. Pure logic: never sees a serenity, teloxide, axum or sqlx type.
//!
//! The [`Classifier`] turns a text into a [`Classification`] (intent, category, service, region, private data,
//! language, reasons) from data files an admin can change. The [`Engine`] is a state machine on an explicit clock:
//! it matches outage questions to notices, groups the rest into outage clusters, raises spike alerts, expires
//! clusters into tickets and throttles floods. [`replay`] and [`eval`] run both over files of past messages, and
//! [`bench`] measures classification speed. Nothing here does I/O except through the readers and writers passed in.

pub mod bench;
pub mod classify;
pub mod data;
pub mod engine;
pub mod eval;
pub mod normalize;
pub mod pii;
pub mod region;
pub mod replay;
mod wordre;

pub use bench::{BenchReport, bench_classify, bench_engine, sample_corpus};
pub use classify::{Category, Classification, Classifier, Intent, Language, Reason, Thresholds, term_problem};
pub use data::{ClassifierData, DataError};
pub use engine::{Action, Decision, Engine, EngineConfig, EngineState, Incoming, Output, Reply, SpikeAlert};
pub use eval::{EvalReport, eval};
pub use pii::PiiFinding;
pub use region::{Region, RegionSource};
pub use replay::{
    InputFormat, ReplayError, ReplayNotice, ReplayOptions, ReplaySummary, parse_duration, read_notices, replay,
};
