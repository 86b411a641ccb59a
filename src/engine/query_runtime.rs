//! The runtime queries execute on, apart from the one serving connections.
//!
//! DataFusion runs a plan's partitions as tasks on the runtime that starts
//! it. On the runtime that also accepts connections, a CPU-bound query (a
//! large cross join) kept every worker busy: new connections, CancelRequests
//! and `statement_timeout` timers waited behind it, so the query could not
//! even be cancelled. Plans therefore start and run here, and their batches
//! cross back to the connection's task through a small channel.

use std::sync::OnceLock;

use arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;
use tokio::runtime::Runtime;

/// Batches in flight between the query runtime and the consumer.
const CHANNEL_BATCHES: usize = 2;

fn runtime() -> Result<&'static Runtime> {
    static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .thread_name("koios-query")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| DataFusionError::Execution(format!("cannot start the query runtime: {e}")))
}

/// The batches of the stream `start` makes, started and polled on the query
/// runtime. Dropping the returned stream stops the query there (its task is
/// aborted, which drops the plan's streams and cancels remote statements).
pub fn run(
    schema: SchemaRef,
    start: impl FnOnce() -> Result<SendableRecordBatchStream> + Send + 'static,
) -> Result<SendableRecordBatchStream> {
    let (sender, receiver) = tokio::sync::mpsc::channel(CHANNEL_BATCHES);
    let task = runtime()?.spawn(async move {
        let mut stream = match start() {
            Ok(stream) => stream,
            Err(e) => {
                let _ = sender.send(Err(e)).await;
                return;
            }
        };
        while let Some(batch) = stream.next().await {
            if sender.send(batch).await.is_err() {
                return;
            }
        }
    });
    let running = AbortOnDrop(task);
    let batches =
        futures::stream::unfold((receiver, running), |(mut receiver, running)| async move {
            let batch = receiver.recv().await?;
            Some((batch, (receiver, running)))
        });
    Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
}

/// Aborts the query's task when its consumer is gone.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
