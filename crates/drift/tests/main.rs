//! The drift crate's tests, one binary (`cargo nextest run -p recserve-drift`).

mod capture;
mod common;
mod ecommerce;
mod hub;
mod metrics;
mod monitor;
mod reference;
