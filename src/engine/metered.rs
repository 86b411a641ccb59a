//! Counting what a query asked of each source: after a plan ran, its
//! connectors' remote leaves (scans, pushed-down subplans) tell which source
//! they read ([`Capabilities::node_source`]) and their metrics how many
//! statements they sent (one per partition run) and rows they received.
//!
//! The count is taken once, when the plan's stream ends or is dropped
//! (cancelled, failed, or not read to the end), by walking the executed
//! plan: nothing is recorded per batch, and the handles are atomics.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::MetricValue;
use futures::{Stream, StreamExt};
use koios_connector::RemoteError;
use koios_connector::pgtext::{DataRowStream, StartDataRows};

use crate::engine::Engine;
use crate::engine::metrics::SourceMetrics;

/// Runs `plan` (as `execute_stream` does) and counts its remote leaves'
/// statements, rows and failures when the stream ends.
pub fn execute(
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
    engine: Arc<Engine>,
) -> Result<SendableRecordBatchStream> {
    let inner = datafusion::physical_plan::execute_stream(Arc::clone(&plan), task)?;
    Ok(Box::pin(Counted {
        inner,
        plan: Some(plan),
        engine,
        failed: false,
    }))
}

/// `rows` (a plan served straight from one remote leaf, `node`) counted as
/// one statement of `node`'s source and its rows as received.
pub fn data_rows(rows: StartDataRows, node: &dyn ExecutionPlan, engine: &Engine) -> StartDataRows {
    let Some(handles) = engine
        .capabilities()
        .node_source(node)
        .and_then(|source| engine.metrics().source(&source.0))
    else {
        return rows;
    };
    Box::new(move |binary| -> DataRowStream {
        handles.remote_statements.increment(1);
        Box::pin(CountedRows {
            inner: rows(binary),
            handles,
            rows: 0,
        })
    })
}

/// Rows served straight from a source, summed here and added to its
/// counter once, when they end (or are dropped).
struct CountedRows {
    inner: DataRowStream,
    handles: Arc<SourceMetrics>,
    rows: u64,
}

impl CountedRows {
    fn flush(&mut self) {
        self.handles
            .rows_received
            .increment(std::mem::take(&mut self.rows));
    }
}

impl Stream for CountedRows {
    type Item = Result<bytes::BytesMut>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) => self.rows += 1,
            Poll::Ready(Some(Err(e))) => {
                if is_remote(e) {
                    self.handles.errors.increment(1);
                }
                self.flush();
            }
            Poll::Ready(None) => self.flush(),
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for CountedRows {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A plan's stream that counts its remote work once, at its end.
struct Counted {
    inner: SendableRecordBatchStream,
    /// Taken when counted.
    plan: Option<Arc<dyn ExecutionPlan>>,
    engine: Arc<Engine>,
    failed: bool,
}

impl Counted {
    fn record_remote(&mut self) {
        let Some(plan) = self.plan.take() else {
            return;
        };
        let mut nodes = vec![plan];
        while let Some(node) = nodes.pop() {
            if let Some(source) = self.engine.capabilities().node_source(node.as_ref()) {
                let handles = self.engine.metrics().source(&source.0);
                if let (Some(handles), Some(metrics)) = (handles, node.metrics()) {
                    // Each partition that ran registered its output rows.
                    let statements = metrics
                        .iter()
                        .filter(|m| matches!(m.value(), MetricValue::OutputRows(_)))
                        .count() as u64;
                    handles.remote_statements.increment(statements);
                    handles
                        .rows_received
                        .increment(metrics.output_rows().unwrap_or(0) as u64);
                    if self.failed {
                        handles.errors.increment(1);
                    }
                }
                continue;
            }
            nodes.extend(node.children().into_iter().cloned());
        }
    }
}

impl Stream for Counted {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        match &polled {
            Poll::Ready(Some(Err(e))) => {
                // Only a backend's failure is the sources' error.
                self.failed |= is_remote(e);
            }
            // Counted before the end reaches the client, so a scrape after
            // the query completes sees it.
            Poll::Ready(None) => self.record_remote(),
            _ => {}
        }
        polled
    }
}

impl RecordBatchStream for Counted {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.record_remote();
    }
}

/// Whether `error` came from a backend (or reaching one): a `RemoteError`
/// anywhere in its chain, or a connection failure (SQLSTATE class 08).
fn is_remote(error: &DataFusionError) -> bool {
    if let DataFusionError::External(inner) = error.find_root()
        && inner.downcast_ref::<RemoteError>().is_some()
    {
        return true;
    }
    crate::engine::error::sqlstate(error).code.starts_with("08")
}
