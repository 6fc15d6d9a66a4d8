//! The `recserve` binary: parses the command line and hands each subcommand to its module.

#![cfg_attr(test, allow(clippy::unwrap_used))]

mod alert_store;
mod cli;
mod demo;
mod deploy;
mod logging;
mod rules;
mod serve;
mod shop;
mod token;

use clap::Parser;

/// mimalloc instead of glibc's allocator: a served request allocates a few dozen small buffers
/// (JSON, tensors, the request log's record) that are freed on another thread; measured in
/// BENCHMARKS.md ("Serving throughput with the request log on and off").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse();
    let default_format = if matches!(cli.command, cli::Command::Serve(_)) { "json" } else { "text" };
    logging::init(&cli.log, default_format)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match cli.command {
        cli::Command::Serve(args) => runtime.block_on(serve::run(args)),
        cli::Command::Demo(args) => runtime.block_on(demo::run(args)),
        cli::Command::Bench(args) => runtime.block_on(cli::bench(args)),
        cli::Command::Shop(command) => shop::run(command),
        cli::Command::Rules(command) => rules::run(command),
        cli::Command::Deploy(args) => runtime.block_on(deploy::run(args)),
        cli::Command::Token(args) => runtime.block_on(token::run(args)),
    }
}
