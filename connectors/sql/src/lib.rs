//! The layer every SQL connector (PostgreSQL, MySQL/MariaDB) shares.
//!
//! A backend implements [`SqlBackend`] ([`backend`]): how to list and
//! describe remote tables, which filters it evaluates exactly like
//! DataFusion, how to run a query into Arrow batches and how to write rows.
//! Everything else is written once here, one concern per module:
//! - [`options`]: the options every SQL source takes (one serde group,
//!   embedded in each backend's options);
//! - [`remote`]: remote tables, columns and their comparison semantics;
//! - [`catalog`]: the catalog with lazy, cached discovery;
//! - [`table`]: the table provider with filter/projection/limit pushdown
//!   and split scans; [`pushdown`]: which filters are exact;
//!   [`row_order`]: a table read in ranges of its physical row order;
//! - [`query`]: remote SQL written by DataFusion's unparser in the
//!   backend's dialect; [`scan`]: the scan node that shows its SQL in
//!   `EXPLAIN`; [`dynamic`]: join filters applied to a running scan;
//! - [`write`]: the insert sink; [`insert`]: inserts of some columns and
//!   `INSERT … RETURNING`; [`dml`]: `DELETE`/`UPDATE` run remotely;
//!   [`staged`]: upserts and changes by key through rows staged on the
//!   backend; [`keyed`]: `DELETE`/`UPDATE` by primary key when they cannot
//!   run as one statement; [`defaults`]: the server's constant
//!   column defaults, for columns an `INSERT` omits;
//! - [`subplan`]: whole-subplan pushdown of joins, aggregates and sorts
//!   within one source (decimal AVG as SUM / COUNT: `koios_connector::avg`);
//! - [`capabilities`]: what the engine may ask of this layer's tables and
//!   nodes; [`pinned`]: which connection a statement inside a session's
//!   transaction block runs on.

pub mod backend;
pub mod capabilities;
pub mod catalog;
pub mod defaults;
pub mod dml;
pub mod dynamic;
pub mod insert;
pub mod keyed;
pub mod options;
pub mod pinned;
pub mod pushdown;
pub mod query;
pub mod remote;
pub mod row_order;
pub mod scan;
pub mod staged;
pub mod subplan;
pub mod table;
pub mod write;

pub use backend::{DeferredSql, SqlBackend};
pub use catalog::SqlSource;
pub use query::RemoteQuery;
pub use remote::{RemoteColumn, RemoteTable, RemoteTableName, Semantics};
pub use subplan::{SubplanPlanner, SubplanPushdown};
