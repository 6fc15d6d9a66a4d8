//! Stand-alone front end for the load generator, until `recserve bench` is wired up:
//!
//! ```text
//! cargo run --release -p recserve-loadgen --example loadgen -- --model mlp --concurrency 32
//! ```

use clap::Parser;

/// Closed-loop load generator for Open Inference Protocol (KServe V2) servers.
#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Cli {
    #[command(flatten)]
    bench: recserve_loadgen::BenchArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match recserve_loadgen::run_and_report(&cli.bench).await {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
