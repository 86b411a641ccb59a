//! Koios: a federated SQL query engine served over the PostgreSQL wire protocol.
//!
//! Layers, imports running one way (see `ARCHITECTURE.md`):
//!
//! * [`engine`]: configuration, the shared catalog of sources, sessions,
//!   planning and execution — no wire protocol.
//! * [`pg`]: the PostgreSQL front end on top of it — pgwire server, type
//!   encodings, `pg_catalog`/`information_schema`, PostgreSQL functions.
//! * [`cli`]: the `koios` commands that talk to a running server as a
//!   PostgreSQL client (`koios sources`, `koios status`).
//! * [`admin`]: the admin HTTP endpoint (health, readiness, sources,
//!   Prometheus metrics), another front end on the engine.
//! * [`registry`]: the composition root that puts this build's connectors
//!   and the front end together ([`Engine::start`](engine::Engine::start)).
//!
//! The short paths below (`koios::config`, `koios::session`, `koios::server`
//! …) are the ones the binary, the tests and the benchmarks use.

pub mod admin;
pub mod cli;
pub mod engine;
pub mod pg;
pub mod registry;

pub use engine::settings::{SERVER_VERSION, SERVER_VERSION_NUM};
pub use engine::{config, error, session};
pub use pg::server;
pub use pg::types as pgtypes;
