//! The physical planner of every session: DataFusion's, plus the planners
//! connectors bring for the logical nodes their rules make
//! (`Connector::extension_planners`), such as a subplan run remotely.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::Session;
use datafusion::common::internal_datafusion_err;
use datafusion::error::Result;
use datafusion::execution::context::{QueryPlanner, SessionState};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_planner::{DefaultPhysicalPlanner, ExtensionPlanner, PhysicalPlanner};

/// DataFusion's physical planner with the connectors' extension planners.
pub struct ConnectorQueryPlanner {
    planner: DefaultPhysicalPlanner,
}

impl ConnectorQueryPlanner {
    pub fn new(extensions: Vec<Arc<dyn ExtensionPlanner + Send + Sync>>) -> Self {
        Self {
            planner: DefaultPhysicalPlanner::with_extension_planners(extensions),
        }
    }
}

impl fmt::Debug for ConnectorQueryPlanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConnectorQueryPlanner")
    }
}

#[async_trait]
impl QueryPlanner for ConnectorQueryPlanner {
    async fn create_physical_plan(
        &self,
        logical_plan: &LogicalPlan,
        session: &dyn Session,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let state = session
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| internal_datafusion_err!("a session that is not a SessionState"))?;
        self.planner.create_physical_plan(logical_plan, state).await
    }
}
