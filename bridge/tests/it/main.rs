//! The bridge's integration tests, in one binary: data-driven classification cases, property tests, the engine on an
//! explicit clock, and replay/eval on a fixture of our own.

mod cases;
mod engine;
mod properties;
mod replay;
