//! Test harness shared by every crate's tests.
//!
//! - [`pg`] starts one throwaway PostgreSQL server per test process (initdb into a
//!   temporary directory, random port on 127.0.0.1, trust auth, fsync off, prepared
//!   transactions on) and hands each test a fresh database. As root, the server runs
//!   as the `postgres` system user, since initdb refuses root. A watchdog stops the
//!   server when the test process ends, however it ends; leftovers of a killed run are
//!   removed by the next one.
//! - [`project`] builds ripcord projects (config + change files) in temporary directories.
#![forbid(unsafe_code)]

pub mod pg;
pub mod project;

pub use pg::{
    PgServer, TestDatabase, pg, pg_bindir, pg_fleet, pg_logical, pg_without_prepared_transactions,
};
pub use project::Project;
