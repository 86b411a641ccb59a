//! The contract between Koios and its connectors.
//!
//! A *connector* knows one kind of backend (`files`, `postgres`, …) and turns a
//! [`SourceSpec`] from configuration into a live [`Source`]. A source exposes
//! its tables as one DataFusion [`CatalogProvider`]: the source name is the
//! catalog, so `<source>.<schema>.<table>` addresses any table from any session.
//!
//! One concern per module:
//! - [`contract`]: the traits a backend implements ([`Connector`], [`Source`]);
//! - [`capabilities`]: what the engine may ask about a connector's tables and
//!   plan nodes without knowing their types;
//! - [`ddl`]: changes to a source's tables and schemas (`CREATE TABLE`
//!   …) in terms of no backend, with Koios's declared column types;
//! - [`spec`]: a source's configuration entry and the entry points that
//!   parse its options; [`options`]: the typed-options machinery (serde
//!   structs that refuse unknown keys, shared groups embedded in them);
//!   [`tls`]: the TLS options every network connector shares;
//! - [`remote_sql`]: the one place per SQL dialect that quotes values and
//!   identifiers in remote SQL;
//! - [`avg`]: decimal `avg` finished from a `sum` and a `count`;
//! - [`pgtext`], [`pgbinary`], [`decimal`]: PostgreSQL's text and binary
//!   forms of values, shared with the front end;
//! - [`plan`]: helpers for connectors' plan nodes and rules; [`catalog`]: a
//!   lazily discovered catalog; [`error`]: errors a backend reports;
//!   [`sqlstate`]: errors Koios raises itself, with their SQLSTATE;
//! - [`transaction`]: a session's `BEGIN … COMMIT` as connectors see it,
//!   and the remote transaction a connector opens for it; [`upsert`]:
//!   `INSERT … ON CONFLICT` in terms of no backend; [`insert`]: an insert
//!   of some columns, or with `RETURNING`, in terms of no backend.
//!
//! Keeping this crate small lets every connector crate depend on it without
//! depending on the server, and lets the server treat all backends alike.
//!
//! [`CatalogProvider`]: datafusion::catalog::CatalogProvider

pub mod avg;
pub mod capabilities;
pub mod catalog;
pub mod contract;
pub mod ddl;
pub mod decimal;
pub mod error;
pub mod insert;
pub mod options;
pub mod pgbinary;
pub mod pgtext;
pub mod plan;
pub mod remote_sql;
pub mod row_order;
pub mod spec;
pub mod sqlstate;
pub mod tls;
pub mod transaction;
pub mod upsert;

pub use capabilities::{Capabilities, DirectRowsRequest, RemoteIdentity, TableCapabilities};
pub use contract::{Connector, PoolStatus, Source};
pub use decimal::{decimal_string, push_decimal, push_decimal_i128};
pub use error::RemoteError;
pub use options::{NoGroup, OptionGroup};
pub use plan::{
    QueryParams, append_only, constant_value, count_output_rows, count_row_stream, count_schema,
    leaf_plan_properties, replace_nodes_up,
};
pub use remote_sql::RemoteDialect;
pub use row_order::RowOrder;
pub use spec::{SourceSpec, redact_url};
pub use sqlstate::SqlStateError;
pub use tls::{TlsMode, TlsOptions};
