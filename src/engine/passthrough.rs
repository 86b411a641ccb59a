//! Serving a plan that is one remote query straight from the server's rows.
//!
//! An index lookup through Koios spent most of its time outside the
//! server: decoding the rows into Arrow batches, running them through
//! DataFusion's streams, and writing the batches back out for the client.
//! When the plan is a single remote query (a scan with its filters and
//! limit pushed, or a whole pushed-down subplan, under projections that
//! only pick columns), the connector writes each row's values directly as
//! `DataRow` bodies in the client's formats ([`StartDataRows`]) — the same
//! bytes, checks and errors as the Arrow path, which serves every other
//! plan.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::error::Result;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::expressions::Column;
use datafusion::physical_plan::limit::{GlobalLimitExec, LocalLimitExec};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use futures::TryStreamExt;
use koios_connector::pgtext::StartDataRows;
use koios_connector::{DirectRowsRequest, QueryParams};

use crate::engine::Engine;
use crate::engine::logical::gate::MemberGateExec;
use crate::engine::logical::mirror::{Attempt, FailoverExec, first_answering};
use crate::engine::metered;

/// The rows of `plan` as `DataRow` bodies, when the plan is one remote
/// query whose connector writes them, under projections that only pick its
/// columns; `params` are the values of a generic plan's placeholders.
/// Nothing runs until the starter is called and its stream polled; its
/// statement and rows are counted in the source's metrics.
pub fn data_rows(
    plan: &Arc<dyn ExecutionPlan>,
    params: Option<&QueryParams>,
    engine: &Engine,
) -> Option<StartDataRows> {
    let columns: Vec<usize> = (0..plan.schema().fields().len()).collect();
    rows_below(plan, columns, None, params, engine)
}

/// [`data_rows`] of `node`, whose output column `columns[i]` is the plan's
/// column `i`, under limits letting at most `fetch` rows through.
fn rows_below(
    mut node: &Arc<dyn ExecutionPlan>,
    mut columns: Vec<usize>,
    mut fetch: Option<usize>,
    params: Option<&QueryParams>,
    engine: &Engine,
) -> Option<StartDataRows> {
    let capabilities = engine.capabilities();
    loop {
        let request = DirectRowsRequest {
            params,
            columns: &columns,
            fetch,
        };
        if let Some(rows) = capabilities.direct_rows(node.as_ref(), request) {
            return rows.map(|rows| metered::data_rows(rows, node.as_ref(), engine));
        }
        if let Some(limit) = node.downcast_ref::<GlobalLimitExec>() {
            if limit.skip() != 0 {
                return None;
            }
            fetch = min_fetch(fetch, limit.fetch());
            node = limit.input();
            continue;
        }
        if let Some(limit) = node.downcast_ref::<LocalLimitExec>() {
            fetch = min_fetch(fetch, Some(limit.fetch()));
            node = limit.input();
            continue;
        }
        if let Some(projection) = node.downcast_ref::<ProjectionExec>() {
            let picks = projection
                .expr()
                .iter()
                .map(|e| e.expr.as_ref().downcast_ref::<Column>().map(Column::index))
                .collect::<Option<Vec<usize>>>()?;
            columns = columns
                .iter()
                .map(|c| picks.get(*c).copied())
                .collect::<Option<_>>()?;
            node = projection.input();
            continue;
        }
        if let Some(union) = node.downcast_ref::<UnionExec>() {
            // A striped table's prepared lookup: the one member whose gate
            // opens for these values answers alone.
            let mut open = Vec::new();
            for child in union.inputs() {
                let gate = child.downcast_ref::<MemberGateExec>()?;
                if gate.opens_for(params) {
                    open.push(gate.input());
                }
            }
            let [only] = open.as_slice() else {
                return None;
            };
            node = only;
            continue;
        }
        if let Some(failover) = node.downcast_ref::<FailoverExec>() {
            // A mirrored read: the copies' own rows, tried in the order the
            // exec would try them (each copy must write its rows).
            let starters = failover
                .ordered_alternatives()
                .into_iter()
                .map(|(copy, alternative)| {
                    rows_below(alternative, columns.clone(), fetch, params, engine)
                        .map(|start| (copy, start))
                })
                .collect::<Option<Vec<_>>>()?;
            let table = failover.table().to_string();
            return Some(Box::new(move |formats: Vec<bool>| {
                let attempts = starters
                    .into_iter()
                    .map(|(copy, start)| {
                        let formats = formats.clone();
                        let attempt: Attempt<bytes::BytesMut> =
                            Box::new(move || Ok(start(formats)));
                        (copy, attempt)
                    })
                    .collect();
                first_answering(table, attempts)
            }));
        }
        node = row_preserving_input(node)?;
    }
}

/// The input of a node that passes its input's rows on unchanged, if
/// `node` is one.
fn row_preserving_input(node: &Arc<dyn ExecutionPlan>) -> Option<&Arc<dyn ExecutionPlan>> {
    if let Some(coop) = node.downcast_ref::<CooperativeExec>() {
        return Some(coop.input());
    }
    if let Some(merge) = node.downcast_ref::<CoalescePartitionsExec>() {
        let input = merge.input();
        let single = input.output_partitioning().partition_count() == 1;
        return (single && merge.fetch().is_none()).then_some(input);
    }
    None
}

fn min_fetch(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A record batch stream that calls `start` when first polled: the Arrow
/// side of an output that may be served as data rows instead, so that the
/// side not read costs nothing.
pub fn lazy_batches(
    schema: SchemaRef,
    start: impl FnOnce() -> Result<SendableRecordBatchStream> + Send + 'static,
) -> SendableRecordBatchStream {
    let stream = futures::stream::once(async move { start() }).try_flatten();
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}
