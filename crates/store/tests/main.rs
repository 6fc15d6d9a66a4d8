//! The store's integration tests: one binary, one module per area. Every store test runs against
//! SQLite (temp dir) and MariaDB/MySQL when `RECSERVE_TEST_MYSQL_URL` is set (each test in a
//! database of its own); without the URL the MySQL variants print a skip line, or fail when
//! `RECSERVE_REQUIRE_MYSQL=1`.

mod common;

mod audit;
mod crash;
mod errors;
mod faults;
mod lease;
mod migrations;
mod notifications;
mod private_mariadb;
mod pseudonym;
mod query;
mod retention;
mod series;
mod state;
mod tokens;
mod writer;
