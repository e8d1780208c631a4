//! The bridge's integration tests, in one binary: data-driven classification cases, property tests, the engine on an
//! explicit clock, replay/eval on a fixture of our own, and the figures on two Dutch evaluation sets of our own.

mod cases;
mod dutch_eval;
mod engine;
mod properties;
mod replay;
