//! The PostgreSQL front end: everything that makes the engine look like a
//! PostgreSQL server to its clients.
//!
//! * [`server`]: the wire protocol (pgwire), TLS, SCRAM, cancel, timeouts.
//! * [`types`]: how Arrow values look to PostgreSQL clients (OIDs, text and
//!   binary encodings, parameters, array literals).
//! * [`catalog`]: `pg_catalog` and `information_schema` over the federated
//!   catalog, and the rewrites of catalog queries drivers send.
//! * [`functions`]: PostgreSQL's session and catalog functions.
//! * [`like_escape`]: `LIKE … ESCAPE` with any escape character.
//! * [`float_comparisons`]: a float compared with a decimal as a float.
//! * [`extension`]: the [`PgExtension`] the engine installs in every session.
//!
//! This layer sits on the engine (`crate::engine`) and imports it; the engine
//! never imports this layer.

pub mod catalog;
pub mod extension;
pub mod float_comparisons;
pub mod functions;
pub mod like_escape;
pub mod server;
pub mod types;

pub use extension::PgExtension;
