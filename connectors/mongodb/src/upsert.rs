//! `INSERT … ON CONFLICT` into a collection: each row a command, since
//! MongoDB matches by filter rather than by constraint. `DO NOTHING`: an
//! `updateOne` with `$setOnInsert` and `upsert` (counted when it inserted).
//! `DO UPDATE`: an `updateOne` with `$set` of the new values on the
//! conflicting document, and the row inserted when none matched (counted
//! either way). A row with a NULL key conflicts with nothing (as in
//! PostgreSQL) and is inserted.
//!
//! Like inserts, not atomic: a failure part-way reports how many rows were
//! written before it.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::sink::DataSink;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::{DisplayAs, DisplayFormatType};
use futures::StreamExt;
use koios_connector::transaction::write_outside_blocks;
use koios_connector::upsert::{ConflictAction, OnConflict, UpsertValue};
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::UpdateOptions;

use crate::discovery::MongoDiscovery;
use crate::types::schema::Shape;
use crate::write::{row_document, to_bson};

pub struct MongoUpsertSink {
    mongo: Arc<MongoDiscovery>,
    database: String,
    collection: String,
    columns: Arc<Vec<(String, Shape)>>,
    schema: SchemaRef,
    on_conflict: OnConflict,
    /// `DO UPDATE`'s new values: a column's, or a constant.
    updates: Vec<(String, NewValue)>,
}

enum NewValue {
    Proposed(String),
    Constant(Option<Bson>),
}

impl MongoUpsertSink {
    pub fn new(
        mongo: Arc<MongoDiscovery>,
        database: String,
        collection: String,
        columns: Arc<Vec<(String, Shape)>>,
        schema: SchemaRef,
        on_conflict: OnConflict,
    ) -> Result<Self> {
        let shape = |column: &str| {
            columns
                .iter()
                .find(|(name, _)| name == column)
                .map(|(_, shape)| shape.clone())
                .ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "column \"{column}\" of {database}.{collection} does not exist"
                    ))
                })
        };
        for column in &on_conflict.target {
            shape(column)?;
        }
        let mut updates = Vec::new();
        if let ConflictAction::Update(assignments) = &on_conflict.action {
            for (column, value) in assignments {
                let column_shape = shape(column)?;
                updates.push((
                    column.clone(),
                    match value {
                        UpsertValue::Proposed(from) => {
                            shape(from)?;
                            NewValue::Proposed(from.clone())
                        }
                        UpsertValue::Constant(v) => {
                            let array = v.to_array()?;
                            NewValue::Constant(to_bson(&array, 0, &column_shape).map_err(|m| {
                                DataFusionError::Plan(format!("column \"{column}\": {m}"))
                            })?)
                        }
                    },
                ));
            }
        }
        Ok(Self {
            mongo,
            database,
            collection,
            columns,
            schema,
            on_conflict,
            updates,
        })
    }

    /// Upserts one row's document; whether it counts.
    async fn upsert(&self, document: Document) -> Result<bool> {
        let target = self
            .mongo
            .collection::<Document>(&self.database, &self.collection);
        let context = format!("upserting into {}.{}", self.database, self.collection);
        let mut filter = Document::new();
        for column in &self.on_conflict.target {
            match document.get(column) {
                Some(value) => {
                    filter.insert(column.clone(), value.clone());
                }
                None => {
                    // A NULL key conflicts with nothing.
                    target
                        .insert_one(document)
                        .await
                        .map_err(|e| self.mongo.error(&context, &e))?;
                    return Ok(true);
                }
            }
        }
        if self.updates.is_empty() {
            let done = target
                .update_one(filter, doc! { "$setOnInsert": document })
                .with_options(UpdateOptions::builder().upsert(true).build())
                .await
                .map_err(|e| self.mongo.error(&context, &e))?;
            return Ok(done.upserted_id.is_some());
        }
        let mut set = Document::new();
        for (column, value) in &self.updates {
            let value = match value {
                NewValue::Proposed(from) => document.get(from).cloned(),
                NewValue::Constant(value) => value.clone(),
            };
            set.insert(column.clone(), value.unwrap_or(Bson::Null));
        }
        let done = target
            .update_one(filter, doc! { "$set": set })
            .await
            .map_err(|e| self.mongo.error(&context, &e))?;
        if done.matched_count == 0 {
            target
                .insert_one(document)
                .await
                .map_err(|e| self.mongo.error(&context, &e))?;
        }
        Ok(true)
    }
}

impl fmt::Debug for MongoUpsertSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MongoUpsertSink({}.{})", self.database, self.collection)
    }
}

impl DisplayAs for MongoUpsertSink {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MongoSink: source={}, collection={}.{}, {}",
            self.mongo.source,
            self.database,
            self.collection,
            self.on_conflict.describe()
        )
    }
}

#[async_trait]
impl DataSink for MongoUpsertSink {
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
        while let Some(batch) = data.next().await {
            let batch = batch?;
            for row in 0..batch.num_rows() {
                let what = || format!("upserting into {}.{}", self.database, self.collection);
                let document = row_document(&self.mongo, &self.columns, &batch, row, what)?;
                let counted = self.upsert(document).await.map_err(|e| {
                    DataFusionError::Context(
                        format!("{written} rows were written before this error"),
                        Box::new(e),
                    )
                })?;
                written += u64::from(counted);
            }
        }
        Ok(written)
    }
}
