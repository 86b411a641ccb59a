//! What the engine may learn about a connector's tables and plan nodes
//! without knowing their types.
//!
//! The engine's planner rules, its plan cache and its direct-row path need a
//! few facts about the tables and execution nodes a connector makes: which
//! remote engine serves a table (tables of one engine may be joined there),
//! its primary key, whether a leaf reads its rows when executed (so a cached
//! plan can run again), which source a leaf reads and the statements it
//! sends (what `koios.system.queries` shows), and whether a node can write
//! its rows straight into what the client receives. Each [`Connector`] answers for its own types
//! (only its crate downcasts to them); [`Capabilities`] asks every
//! connector of the build.

use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::physical_plan::ExecutionPlan;

use crate::pgtext::StartDataRows;
use crate::{Connector, QueryParams};

/// The remote engine serving a table: tables with equal identities are
/// reached through one server and one connection pool, so a join between
/// them can run there. (The source's name: one source, one pool.)
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RemoteIdentity(pub String);

/// What a connector says of one of its tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableCapabilities {
    /// Where the table is evaluated; `None` for data Koios reads itself.
    pub remote: Option<RemoteIdentity>,
    /// The primary key's columns, in key order (empty if none or unknown).
    pub primary_key: Vec<String>,
    /// The backend's estimate of the table's rows, if it keeps one.
    pub estimated_rows: Option<u64>,
    /// Columns whose default the backend computes and Koios cannot (a
    /// sequence, an identity or `AUTO_INCREMENT` column, `now()`, a
    /// generated column): an insert that omits one leaves it to the backend.
    pub server_defaults: Vec<String>,
}

/// A request to serve a plan node's rows straight to a client.
#[derive(Debug, Clone, Copy)]
pub struct DirectRowsRequest<'a> {
    /// The values of a generic plan's placeholders, if any.
    pub params: Option<&'a QueryParams>,
    /// The node's output columns to write, in order (a projection above
    /// may reorder or repeat them).
    pub columns: &'a [usize],
    /// The fewest rows a limit above the node lets through, if any: the
    /// node may only serve them if it sends no more.
    pub fetch: Option<usize>,
}

/// The connectors of a build, asked together.
#[derive(Clone, Default)]
pub struct Capabilities {
    connectors: Vec<Arc<dyn Connector>>,
}

impl std::fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.connectors.iter().map(|c| c.kind()))
            .finish()
    }
}

impl Capabilities {
    pub fn new(connectors: impl IntoIterator<Item = Arc<dyn Connector>>) -> Capabilities {
        Capabilities {
            connectors: connectors.into_iter().collect(),
        }
    }

    /// What the connector that made `table` says of it; `None` for tables
    /// of no connector (Koios's own, DataFusion's).
    pub fn table(&self, table: &dyn TableProvider) -> Option<TableCapabilities> {
        self.connectors
            .iter()
            .find_map(|c| c.table_capabilities(table))
    }

    /// Whether `node` is a connector's leaf that reads its rows each time it
    /// is executed (not when it was planned): a plan of such leaves and
    /// stateless operators can be cached and run again.
    pub fn reads_when_executed(&self, node: &dyn ExecutionPlan) -> bool {
        self.connectors.iter().any(|c| c.reads_when_executed(node))
    }

    /// The source `node` reads from, if it is a connector's leaf reading
    /// one (see [`Connector::node_source`]).
    pub fn node_source(&self, node: &dyn ExecutionPlan) -> Option<RemoteIdentity> {
        self.connectors.iter().find_map(|c| c.node_source(node))
    }

    /// The statements a connector's leaf sends to its source, if it says
    /// (see [`Connector::node_remote_sql`]).
    pub fn node_remote_sql(&self, node: &dyn ExecutionPlan) -> Option<Vec<String>> {
        self.connectors.iter().find_map(|c| c.node_remote_sql(node))
    }

    /// The rows of `node` written straight into `DataRow` bodies: `None`
    /// when no connector made `node`; `Some(None)` when its connector made
    /// it but cannot serve this request (the caller runs the plan).
    pub fn direct_rows(
        &self,
        node: &dyn ExecutionPlan,
        request: DirectRowsRequest<'_>,
    ) -> Option<Option<StartDataRows>> {
        self.connectors
            .iter()
            .find_map(|c| c.direct_rows(node, request))
    }

    /// The plan of an insert with `ON CONFLICT` into `table` (see
    /// [`Connector::plan_upsert`]); `None` for a table of no connector.
    pub fn plan_upsert(
        &self,
        table: &dyn TableProvider,
        input: Arc<dyn ExecutionPlan>,
        on_conflict: &crate::upsert::OnConflict,
    ) -> Option<datafusion::error::Result<Arc<dyn ExecutionPlan>>> {
        self.connectors
            .iter()
            .find_map(|c| c.plan_upsert(table, Arc::clone(&input), on_conflict))
    }

    /// The plan of an insert of some columns of `table`, or returning its
    /// rows (see [`Connector::plan_insert`]); `None` for a table of no
    /// connector.
    pub fn plan_insert(
        &self,
        table: &dyn TableProvider,
        input: Arc<dyn ExecutionPlan>,
        insert: &crate::insert::ColumnInsert,
    ) -> Option<datafusion::error::Result<Arc<dyn ExecutionPlan>>> {
        self.connectors
            .iter()
            .find_map(|c| c.plan_insert(table, Arc::clone(&input), insert))
    }

    /// `table`'s rows by physical position (see [`Connector::row_order`]);
    /// `None` when its backend has no such order or no connector made it.
    pub fn row_order(&self, table: &dyn TableProvider) -> Option<Arc<dyn crate::RowOrder>> {
        self.connectors.iter().find_map(|c| c.row_order(table))
    }

    /// The plan of a change by primary key of `table` (see
    /// [`Connector::plan_keyed_change`]); `None` for a table of no connector.
    pub fn plan_keyed_change(
        &self,
        table: &dyn TableProvider,
        input: Arc<dyn ExecutionPlan>,
        change: &crate::remote_sql::KeyedChange,
    ) -> Option<datafusion::error::Result<Arc<dyn ExecutionPlan>>> {
        self.connectors
            .iter()
            .find_map(|c| c.plan_keyed_change(table, Arc::clone(&input), change))
    }
}
