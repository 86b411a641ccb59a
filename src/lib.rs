//! Koios: a federated SQL query engine served over the PostgreSQL wire protocol.
//!
//! * [`config`]: the TOML configuration and the embedded default.
//! * [`engine`]: the shared catalog of all sources, and sessions over it.
//! * [`session`]: SQL sessions independent of the wire protocol.
//! * [`server`]: the pgwire front end.
//! * [`pgtypes`]: how Arrow values look to PostgreSQL clients.
//! * [`pgcatalog`]: `pg_catalog` and `information_schema` over the federated catalog.
//! * [`pgfunctions`]: PostgreSQL's session and catalog functions.
//! * [`demo`]: the TPC-H demo data of the embedded default.

pub mod config;
pub mod demo;
pub mod engine;
pub mod error;
pub mod literals;
pub mod passthrough;
pub mod pgcatalog;
pub mod pgfunctions;
pub mod pgtypes;
pub mod plancache;
pub mod planner;
pub mod query_runtime;
pub mod server;
pub mod session;

/// The PostgreSQL version Koios presents itself as; drivers parse it.
pub const SERVER_VERSION: &str = "15.0 (Koios)";
/// `server_version_num` matching [`SERVER_VERSION`].
pub const SERVER_VERSION_NUM: &str = "150000";
