//! The engine layer: everything Koios does with SQL, independent of any
//! wire protocol.
//!
//! * [`config`]: the TOML configuration and the embedded default.
//! * [`catalog`]: the shared catalog of every source ([`Engine`]).
//! * [`session`]: SQL sessions — Koios's own statements, session commands,
//!   planning and execution.
//! * [`settings`], [`timeout`], [`search_path`]: session parameters;
//!   [`session_catalog`]: what a session sees of the catalogs.
//! * [`planner`], [`physical_planner`], [`plancache`], [`literals`], [`passthrough`],
//!   [`query_runtime`]: planning rules, plan reuse and execution.
//! * [`extension`]: the hooks a front end installs in every session.
//! * [`credentials`]: stored password verifiers of configured users and
//!   the admin endpoint's token.
//! * [`metrics`]: counters, gauges and histograms for `/metrics`;
//!   [`metered`]: what each query asked of each source; [`scrape`]: what
//!   is read when `/metrics` is scraped.
//! * [`error`]: Koios's error type and SQLSTATE codes.
//!
//! Nothing here imports the front end (`crate::pg`); it reaches backends
//! only through the connector contract (`koios_connector`).

pub mod catalog;
pub mod config;
pub mod credentials;
pub mod error;
pub mod extension;
pub mod literals;
pub mod metered;
pub mod metrics;
pub mod passthrough;
pub mod physical_planner;
pub mod plancache;
pub mod planner;
pub mod query_runtime;
pub mod scrape;
pub mod search_path;
pub mod session;
pub mod session_catalog;
pub mod settings;
pub mod timeout;

pub use catalog::{DEFAULT_SCHEMA, Engine, KOIOS_CATALOG, SourceState};
