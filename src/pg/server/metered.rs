//! The client-side metrics of one statement: its outcome and duration, and
//! the rows and bytes sent for it.
//!
//! A statement's rows are streamed by pgwire after the handler returns, so
//! it ends when its row stream does: [`MeteredRows`] records then (or, for a
//! statement without rows, [`QueryMeter::finish`] at once). Rows and bytes
//! are summed locally and added once per statement; the engine's handles
//! are atomics, so nothing here takes a lock.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures::Stream;
use futures::stream::BoxStream;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;

use crate::engine::error::codes;
use crate::engine::metrics::{EngineMetrics, Outcome};

/// One statement being measured; records exactly once.
pub(super) struct QueryMeter {
    metrics: Arc<EngineMetrics>,
    started: Instant,
    finished: bool,
}

impl QueryMeter {
    pub(super) fn start(metrics: &Arc<EngineMetrics>) -> QueryMeter {
        QueryMeter {
            metrics: Arc::clone(metrics),
            started: Instant::now(),
            finished: false,
        }
    }

    /// Not a statement after all (the caller measures another way).
    pub(super) fn discard(mut self) {
        self.finished = true;
    }

    /// Records the statement's end: success, or the error the client got.
    pub(super) fn finish<T>(&mut self, result: &PgWireResult<T>) {
        match result {
            Ok(_) => self.record(Outcome::Ok, None),
            Err(error) => self.finish_error(error),
        }
    }

    fn finish_error(&mut self, error: &PgWireError) {
        match error {
            PgWireError::UserError(info) => {
                let outcome = if info.code == codes::QUERY_CANCELED {
                    Outcome::Cancelled
                } else {
                    Outcome::Error
                };
                self.record(outcome, Some(&info.code));
            }
            // Not an ErrorResponse: the connection itself failed.
            _ => self.record(Outcome::Error, Some(codes::INTERNAL_ERROR)),
        }
    }

    fn record(&mut self, outcome: Outcome, sqlstate: Option<&str>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let seconds = self.started.elapsed().as_secs_f64();
        self.metrics.query(outcome, seconds, sqlstate);
    }
}

impl Drop for QueryMeter {
    /// Dropped unfinished: the client went away before the statement's
    /// rows were all sent (its task was stopped), as good as a cancel.
    fn drop(&mut self) {
        self.record(Outcome::Cancelled, None);
    }
}

/// A statement's rows on their way to the client, counted.
pub(super) struct MeteredRows {
    rows: BoxStream<'static, PgWireResult<DataRow>>,
    meter: QueryMeter,
    sent_rows: u64,
    sent_bytes: u64,
}

impl MeteredRows {
    pub(super) fn new(rows: BoxStream<'static, PgWireResult<DataRow>>, meter: QueryMeter) -> Self {
        MeteredRows {
            rows,
            meter,
            sent_rows: 0,
            sent_bytes: 0,
        }
    }

    /// Adds the rows and bytes counted so far, once the statement ends:
    /// before the client hears of the end, so a scrape after it sees them.
    fn flush_sent(&mut self) {
        if self.sent_rows > 0 || self.sent_bytes > 0 {
            self.meter.metrics.sent(self.sent_rows, self.sent_bytes);
            (self.sent_rows, self.sent_bytes) = (0, 0);
        }
    }
}

impl Stream for MeteredRows {
    type Item = PgWireResult<DataRow>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.rows.as_mut().poll_next(cx);
        match &polled {
            Poll::Ready(Some(Ok(row))) => {
                self.sent_rows += 1;
                self.sent_bytes += row.data.len() as u64;
            }
            Poll::Ready(Some(Err(error))) => {
                self.flush_sent();
                self.meter.finish_error(error);
            }
            Poll::Ready(None) => {
                self.flush_sent();
                self.meter.record(Outcome::Ok, None);
            }
            Poll::Pending => {}
        }
        polled
    }
}

impl Drop for MeteredRows {
    /// Abandoned before its end: the rows sent until then still count.
    fn drop(&mut self) {
        self.flush_sent();
    }
}
