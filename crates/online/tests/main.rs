//! The online crate's tests, one binary (`cargo nextest run -p recserve-online`).

mod metrics;
mod stats;
