//! Tests of recserve-alerting.
#![allow(clippy::unwrap_used)]
