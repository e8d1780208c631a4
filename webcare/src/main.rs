//! The `webcare` binary: reads the configuration, opens the database, and runs what is configured.
//!
//! It is the only place that wires adapters (storage, HTTP, later the bots) to the logic crates. Every command
//! exits non-zero with a one-line reason on standard error when it fails; `check-config` exits 2 on an invalid
//! configuration, as INTERFACES.md promises.

mod admin;
mod bench;
mod bench_broadcast;
mod cli;
mod replay;
mod serve;

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: the intake allocates and frees many small rows and strings per message,
/// and glibc's `free` of a large batch of them consolidates its free lists on the hot path (`bench ingest`, README).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("webcare: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(cli::run(cli))
}
