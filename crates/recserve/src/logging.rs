//! Service log set-up: tracing events as JSON lines (or readable text) on stderr, filtered by
//! `--log-level` / `RUST_LOG`.

use crate::cli::LogArgs;
use tracing_subscriber::EnvFilter;

pub fn init(args: &LogArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&args.log_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = if args.log_format == "json" { builder.json().try_init() } else { builder.try_init() };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}
