//! The `hgpose` command line: `run` (the sensor node), `infer`, `info`, `bench`, `quantize`,
//! `export` and `doctor` over the library's pipeline. Here: logging, parsing and dispatch; the
//! commands are in `cli/`.

mod cli;

use clap::Parser;
use std::process::ExitCode;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HGPOSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("hgpose=info,warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if !hgpose::platform::memory::keep_freed_memory() {
        tracing::debug!("the allocator keeps its own thresholds (not glibc)");
    }
    let result = match Cli::parse().command {
        Command::Run(args) => cli::run::run(args),
        Command::Infer(args) => cli::infer::run(args),
        Command::Info(args) => cli::info::run(args),
        Command::Bench(args) => cli::bench::run(args),
        Command::Quantize(args) => cli::quantize::run(args),
        Command::Export(args) => cli::export::run(args),
        Command::Doctor(args) => cli::doctor::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hgpose: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// True when the reader of our stdout went away: not an error worth reporting.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}
