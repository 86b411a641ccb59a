//! Decoding `COPY ... TO STDOUT (FORMAT binary)` output into record batches.
//!
//! PostgreSQL sends a signature header, then one tuple per row (a field
//! count, then each field as a length-prefixed value, `-1` for NULL), then a
//! trailer (`-1`). Chunks may split tuples anywhere, so incomplete input is
//! kept until the next chunk arrives.

use std::sync::Arc;

use bytes::{Buf, BytesMut};
use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::SchemaRef;

use crate::decode::ColumnBuilder;
use crate::types::PgCodec;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Turns COPY binary chunks into batches of at most `batch_size` rows.
pub struct CopyDecoder {
    schema: SchemaRef,
    builders: Vec<ColumnBuilder>,
    names: Vec<String>,
    /// Read the constant 1 in place of columns (`count(*)`-style scans).
    discard_columns: bool,
    buffer: BytesMut,
    header_done: bool,
    finished: bool,
    rows: usize,
    batch_size: usize,
}

impl CopyDecoder {
    /// A decoder whose column builders first hold `capacity` rows.
    pub fn new(
        schema: SchemaRef,
        codecs: &[PgCodec],
        names: Vec<String>,
        batch_size: usize,
        capacity: usize,
    ) -> Self {
        let discard_columns = codecs.is_empty();
        let builders = if discard_columns {
            vec![ColumnBuilder::new(&PgCodec::Int4, capacity)]
        } else {
            codecs
                .iter()
                .map(|c| ColumnBuilder::new(c, capacity))
                .collect()
        };
        Self {
            schema,
            builders,
            names,
            discard_columns,
            buffer: BytesMut::new(),
            header_done: false,
            finished: false,
            rows: 0,
            batch_size: batch_size.max(1),
        }
    }

    /// Adds a chunk; returns the batches it completed.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<RecordBatch>, String> {
        self.buffer.extend_from_slice(chunk);
        let mut batches = Vec::new();
        if !self.header_done {
            if self.buffer.len() < SIGNATURE.len() + 8 {
                return Ok(batches);
            }
            if &self.buffer[..SIGNATURE.len()] != SIGNATURE {
                return Err("unexpected COPY header".into());
            }
            let extension = u32::from_be_bytes(
                self.buffer[SIGNATURE.len() + 4..SIGNATURE.len() + 8]
                    .try_into()
                    .map_err(|_| "bad COPY header")?,
            ) as usize;
            if self.buffer.len() < SIGNATURE.len() + 8 + extension {
                return Ok(batches);
            }
            self.buffer.advance(SIGNATURE.len() + 8 + extension);
            self.header_done = true;
        }
        while !self.finished {
            let Some(len) = self.complete_tuple_len()? else {
                break;
            };
            let tuple = self.buffer.split_to(len);
            self.decode_tuple(&tuple)?;
            if self.rows == self.batch_size {
                batches.push(self.take_batch()?);
            }
        }
        Ok(batches)
    }

    /// Adds one row of a query result (binary format: the same value
    /// encoding as COPY's); returns the batch it completed, if any.
    pub fn push_row<'a>(
        &mut self,
        fields: impl IntoIterator<Item = Option<&'a [u8]>>,
    ) -> Result<Option<RecordBatch>, String> {
        for (i, (builder, value)) in self.builders.iter_mut().zip(fields).enumerate() {
            builder.append(value).map_err(|e| match self.names.get(i) {
                Some(name) => format!("column {name}: {e}"),
                None => e,
            })?;
        }
        self.rows += 1;
        if self.rows == self.batch_size {
            return self.take_batch().map(Some);
        }
        Ok(None)
    }

    /// The rows left when the stream ends.
    pub fn finish(&mut self) -> Result<Option<RecordBatch>, String> {
        if !self.buffer.is_empty() && !self.finished {
            return Err("COPY data ended in the middle of a row".into());
        }
        if self.rows == 0 {
            return Ok(None);
        }
        self.take_batch().map(Some)
    }

    /// Length of the next whole tuple in the buffer, if it is all there.
    fn complete_tuple_len(&mut self) -> Result<Option<usize>, String> {
        let b = &self.buffer[..];
        if b.len() < 2 {
            return Ok(None);
        }
        let fields = i16::from_be_bytes([b[0], b[1]]);
        if fields == -1 {
            self.finished = true;
            self.buffer.clear();
            return Ok(None);
        }
        let expected = if self.discard_columns {
            1
        } else {
            self.builders.len()
        };
        if fields as usize != expected {
            return Err(format!("COPY row has {fields} fields, expected {expected}"));
        }
        let mut at = 2;
        for _ in 0..fields {
            if b.len() < at + 4 {
                return Ok(None);
            }
            let len = i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            at += 4;
            if len > 0 {
                at += len as usize;
            }
            if b.len() < at {
                return Ok(None);
            }
        }
        Ok(Some(at))
    }

    fn decode_tuple(&mut self, tuple: &[u8]) -> Result<(), String> {
        let mut at = 2;
        for (i, builder) in self.builders.iter_mut().enumerate() {
            let len = i32::from_be_bytes([tuple[at], tuple[at + 1], tuple[at + 2], tuple[at + 3]]);
            at += 4;
            let value = if len < 0 {
                None
            } else {
                let v = &tuple[at..at + len as usize];
                at += len as usize;
                Some(v)
            };
            builder.append(value).map_err(|e| match self.names.get(i) {
                Some(name) => format!("column {name}: {e}"),
                None => e,
            })?;
        }
        self.rows += 1;
        Ok(())
    }

    fn take_batch(&mut self) -> Result<RecordBatch, String> {
        let rows = std::mem::take(&mut self.rows);
        let columns: Vec<_> = self.builders.iter_mut().map(|b| b.finish()).collect();
        let columns = if self.discard_columns {
            Vec::new()
        } else {
            columns
        };
        RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| e.to_string())
    }
}
