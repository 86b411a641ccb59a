//! `INSERT INTO mongo.db.collection …`: rows become documents, sent with
//! `insertMany` in batches. NULL fields are left out of the document (they
//! read back as NULL either way), so a NULL `_id` lets MongoDB assign one.
//!
//! MongoDB has no multi-document atomicity outside replica-set transactions,
//! so a failure part-way reports how many rows were written before it.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::*;
use datafusion::datasource::sink::DataSink;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;
use koios_connector::transaction::write_outside_blocks;
use mongodb::bson::{Binary, Bson, Document, oid::ObjectId, spec::BinarySubtype};

use crate::discovery::MongoDiscovery;
use crate::types::schema::Shape;

/// Documents per `insertMany` command.
const INSERT_BATCH: usize = 1000;

pub struct MongoSink {
    mongo: Arc<MongoDiscovery>,
    database: String,
    collection: String,
    columns: Arc<Vec<(String, Shape)>>,
    schema: SchemaRef,
}

impl MongoSink {
    pub fn new(
        mongo: Arc<MongoDiscovery>,
        database: String,
        collection: String,
        columns: Arc<Vec<(String, Shape)>>,
        schema: SchemaRef,
    ) -> Self {
        Self {
            mongo,
            database,
            collection,
            columns,
            schema,
        }
    }

    async fn flush(&self, documents: &mut Vec<Document>, written: u64) -> Result<u64> {
        if documents.is_empty() {
            return Ok(0);
        }
        let count = documents.len() as u64;
        self.mongo
            .collection::<Document>(&self.database, &self.collection)
            .insert_many(std::mem::take(documents))
            .await
            .map_err(|e| {
                self.mongo.error(
                    &format!(
                        "inserting into {}.{} ({written} rows were written before this error)",
                        self.database, self.collection
                    ),
                    &e,
                )
            })?;
        Ok(count)
    }
}

impl fmt::Debug for MongoSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MongoSink({}.{})", self.database, self.collection)
    }
}

impl DisplayAs for MongoSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MongoSink: source={}, collection={}.{}",
            self.mongo.source, self.database, self.collection
        )
    }
}

#[async_trait]
impl DataSink for MongoSink {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    async fn write_all(
        &self,
        mut data: SendableRecordBatchStream,
        context: &Arc<TaskContext>,
    ) -> Result<u64> {
        write_outside_blocks(context, &self.mongo.source, "MongoDB").await?;
        let mut written = 0u64;
        let mut pending = Vec::with_capacity(INSERT_BATCH);
        while let Some(batch) = data.next().await {
            let batch = batch?;
            for row in 0..batch.num_rows() {
                let what = || format!("inserting into {}.{}", self.database, self.collection);
                pending.push(row_document(&self.mongo, &self.columns, &batch, row, what)?);
                if pending.len() >= INSERT_BATCH {
                    written += self.flush(&mut pending, written).await?;
                }
            }
        }
        written += self.flush(&mut pending, written).await?;
        Ok(written)
    }
}

/// Row `row` of `batch` (in `columns`' order) as a document; NULL fields
/// are left out. `what` says what the row is for, in errors.
pub(crate) fn row_document(
    mongo: &MongoDiscovery,
    columns: &[(String, Shape)],
    batch: &datafusion::arrow::array::RecordBatch,
    row: usize,
    what: impl Fn() -> String,
) -> Result<Document> {
    let mut document = Document::new();
    for (i, (name, shape)) in columns.iter().enumerate() {
        let value = to_bson(batch.column(i), row, shape).map_err(|m| {
            DataFusionError::Execution(format!(
                "source '{}': {}: column {name}: {m}",
                mongo.source,
                what()
            ))
        })?;
        if let Some(value) = value {
            document.insert(name.clone(), value);
        }
    }
    Ok(document)
}

/// One Arrow value as BSON for a column of `shape`; `None` for NULL.
pub(crate) fn to_bson(
    array: &ArrayRef,
    row: usize,
    shape: &Shape,
) -> std::result::Result<Option<Bson>, String> {
    if array.is_null(row) {
        return Ok(None);
    }
    let value = match array.data_type() {
        DataType::Boolean => Bson::Boolean(array.as_boolean().value(row)),
        DataType::Int8 => Bson::Int32(array.as_primitive::<Int8Type>().value(row) as i32),
        DataType::Int16 => Bson::Int32(array.as_primitive::<Int16Type>().value(row) as i32),
        DataType::Int32 => Bson::Int32(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => Bson::Int64(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Bson::Int32(array.as_primitive::<UInt8Type>().value(row) as i32),
        DataType::UInt16 => Bson::Int32(array.as_primitive::<UInt16Type>().value(row) as i32),
        DataType::UInt32 => Bson::Int64(array.as_primitive::<UInt32Type>().value(row) as i64),
        DataType::UInt64 => Bson::Int64(
            i64::try_from(array.as_primitive::<UInt64Type>().value(row))
                .map_err(|_| "value exceeds int64".to_string())?,
        ),
        DataType::Float32 => Bson::Double(array.as_primitive::<Float32Type>().value(row) as f64),
        DataType::Float64 => Bson::Double(array.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal128(_, scale) => {
            let unscaled = array.as_primitive::<Decimal128Type>().value(row);
            Bson::Decimal128(mongodb::bson::Decimal128::from_bytes(
                crate::types::decimal::encode(unscaled, *scale)
                    .ok_or("value has more than 34 digits, beyond decimal128")?,
            ))
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = match array.data_type() {
                DataType::Utf8 => array.as_string::<i32>().value(row),
                DataType::LargeUtf8 => array.as_string::<i64>().value(row),
                _ => array.as_string_view().value(row),
            };
            match shape {
                Shape::ObjectId => Bson::ObjectId(
                    ObjectId::parse_str(text)
                        .map_err(|_| format!("'{text}' is not an ObjectId (24 hex digits)"))?,
                ),
                _ => Bson::String(text.to_string()),
            }
        }
        DataType::Binary => Bson::Binary(Binary {
            subtype: BinarySubtype::Generic,
            bytes: array.as_binary::<i32>().value(row).to_vec(),
        }),
        DataType::Timestamp(unit, _) => {
            let raw = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row) * 1000,
                TimeUnit::Millisecond => {
                    array.as_primitive::<TimestampMillisecondType>().value(row)
                }
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row) / 1000
                }
                TimeUnit::Nanosecond => {
                    array.as_primitive::<TimestampNanosecondType>().value(row) / 1_000_000
                }
            };
            Bson::DateTime(mongodb::bson::DateTime::from_millis(raw))
        }
        DataType::Date32 => Bson::DateTime(mongodb::bson::DateTime::from_millis(
            array.as_primitive::<Date32Type>().value(row) as i64 * 86_400_000,
        )),
        DataType::Struct(fields) => {
            let structs = array.as_struct();
            let inner = match shape {
                Shape::Document(inner) => inner.clone(),
                _ => Vec::new(),
            };
            let mut document = Document::new();
            for (i, field) in fields.iter().enumerate() {
                let child_shape = inner
                    .iter()
                    .find(|(n, _)| n == field.name())
                    .map(|(_, s)| s.clone())
                    .unwrap_or(Shape::Text);
                if let Some(v) = to_bson(structs.column(i), row, &child_shape)? {
                    document.insert(field.name().clone(), v);
                }
            }
            Bson::Document(document)
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let items = list.value(row);
            let item_shape = match shape {
                Shape::Array(item) => (**item).clone(),
                _ => Shape::Text,
            };
            Bson::Array(
                (0..items.len())
                    .map(|i| to_bson(&items, i, &item_shape).map(|v| v.unwrap_or(Bson::Null)))
                    .collect::<std::result::Result<Vec<_>, _>>()?,
            )
        }
        other => return Err(format!("cannot store {other} in MongoDB")),
    };
    Ok(Some(value))
}
