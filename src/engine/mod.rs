//! The engine layer: everything Koios does with SQL, independent of any
//! wire protocol.
//!
//! * [`config`]: the TOML configuration and the embedded default.
//! * [`catalog`]: the shared catalog of every source ([`Engine`]).
//! * [`sources`]: sources from the file and from `CREATE SOURCE`, their
//!   health and the statements that manage them; [`metadata`]: the store
//!   where Koios keeps what it owns; [`system`]: Koios's own tables
//!   (`koios.system.*`).
//! * [`logical`]: logical tables (striped or mirrored over members in the
//!   sources); [`jobs`]: background jobs (a new copy being filled) with
//!   their progress and controls; [`notices`]: warnings a statement leaves
//!   for its client.
//! * [`remote_ddl`]: `CREATE/ALTER/DROP TABLE`, `TRUNCATE` and
//!   `CREATE/DROP SCHEMA` naming a source's tables, made in its backend.
//! * [`session`]: SQL sessions — Koios's own statements, session commands,
//!   planning and execution.
//! * [`settings`], [`timeout`], [`search_path`]: session parameters;
//!   [`session_catalog`]: what a session sees of the catalogs.
//! * [`union_pushdown`]: partial aggregates and top-N into the branches of
//!   a `UNION ALL` (a striped table's members).
//! * [`planner`], [`physical_planner`], [`plancache`], [`literals`], [`passthrough`],
//!   [`query_runtime`]: planning rules, plan reuse and execution.
//! * [`extension`]: the hooks a front end installs in every session.
//! * [`activity`]: every session and what it runs; [`system`]: Koios's own
//!   tables (`koios.system.*`).
//! * [`credentials`]: stored password verifiers of configured users and
//!   the admin endpoint's token.
//! * [`metrics`]: counters, gauges and histograms for `/metrics`;
//!   [`metered`]: what each query asked of each source; [`scrape`]: what
//!   is read when `/metrics` is scraped.
//! * [`error`]: Koios's error type and SQLSTATE codes.
//!
//! Nothing here imports the front end (`crate::pg`); it reaches backends
//! only through the connector contract (`koios_connector`).

pub mod activity;
pub mod catalog;
pub mod catalog_list;
pub mod config;
pub mod credentials;
pub mod error;
pub mod extension;
pub mod jobs;
pub mod literals;
pub mod logical;
pub mod metadata;
pub mod metered;
pub mod metrics;
pub mod migrate;
pub mod notices;
pub mod passthrough;
pub mod physical_planner;
pub mod plancache;
pub mod planner;
pub mod query_runtime;
pub mod remote_ddl;
pub mod scrape;
pub mod search_path;
pub mod session;
pub mod session_catalog;
pub mod settings;
pub mod sources;
pub mod system;
pub mod timeout;
pub mod union_pushdown;

pub use catalog::{DEFAULT_SCHEMA, Engine, KOIOS_CATALOG};
