//! System tables built from rows at scan time: the row source trait, the
//! table provider over it, scalar helpers and the column kinds the
//! `pg_catalog` and `information_schema` tables are declared with.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use postgres_types::Type;

/// Where a system table's rows come from, computed at each scan.
#[async_trait]
pub(super) trait RowSource: std::fmt::Debug + Send + Sync + 'static {
    async fn rows(&self) -> Result<Vec<Row>>;
}

/// A system table whose rows are built from the live catalog when scanned.
#[derive(Debug)]
pub(super) struct BuiltTable<S> {
    pub schema: SchemaRef,
    pub source: S,
}

#[async_trait]
impl<S: RowSource> TableProvider for BuiltTable<S> {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let rows = self.source.rows().await?;
        let batch = to_batch(&self.schema, rows)?;
        let table = MemTable::try_new(Arc::clone(&self.schema), vec![vec![batch]])?;
        table.scan(state, projection, filters, limit).await
    }
}

pub(super) type Row = Vec<ScalarValue>;

pub(super) fn text(value: impl Into<String>) -> ScalarValue {
    ScalarValue::Utf8(Some(value.into()))
}

pub(super) fn int2(value: i16) -> ScalarValue {
    ScalarValue::Int16(Some(value))
}

pub(super) fn int4(value: i32) -> ScalarValue {
    ScalarValue::Int32(Some(value))
}

pub(super) fn int8(value: i64) -> ScalarValue {
    ScalarValue::Int64(Some(value))
}

pub(super) fn boolean(value: bool) -> ScalarValue {
    ScalarValue::Boolean(Some(value))
}

pub(super) fn int2_list(values: &[i16]) -> ScalarValue {
    let scalars: Vec<ScalarValue> = values.iter().map(|v| int2(*v)).collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&scalars, &DataType::Int16))
}

pub(super) fn int4_list(values: &[i32]) -> ScalarValue {
    let scalars: Vec<ScalarValue> = values.iter().map(|v| int4(*v)).collect();
    ScalarValue::List(ScalarValue::new_list_nullable(&scalars, &DataType::Int32))
}

pub(super) const NULL: ScalarValue = ScalarValue::Null;

/// Transposes rows into a batch; `NULL` takes each column's type.
pub(super) fn to_batch(schema: &SchemaRef, rows: Vec<Row>) -> Result<RecordBatch> {
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (i, field) in schema.fields().iter().enumerate() {
        let typed_null = ScalarValue::try_from(field.data_type())?;
        let values = rows.iter().map(|row| match row.get(i) {
            Some(ScalarValue::Null) | None => typed_null.clone(),
            Some(value) => value.clone(),
        });
        columns.push(if rows.is_empty() {
            datafusion::arrow::array::new_empty_array(field.data_type())
        } else {
            ScalarValue::iter_to_array(values)?
        });
    }
    let options =
        datafusion::arrow::array::RecordBatchOptions::new().with_row_count(Some(rows.len()));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}

/// Column kinds of the tables below, in PostgreSQL's terms.
#[derive(Clone, Copy)]
pub(super) enum Col {
    Oid,
    Name,
    Int2,
    Int4,
    Int8,
    Float4,
    Bool,
    Text,
    TextArray,
    Int2Vector,
    OidVector,
    Timestamptz,
}

pub(super) fn schema_of(columns: &[(&str, Col)]) -> SchemaRef {
    let list = |dt: DataType| DataType::List(Arc::new(Field::new_list_field(dt, true)));
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, col)| {
                let dt = match col {
                    Col::Oid | Col::Int4 => DataType::Int32,
                    Col::Name | Col::Text => DataType::Utf8,
                    Col::Int2 => DataType::Int16,
                    Col::Int8 => DataType::Int64,
                    Col::Float4 => DataType::Float32,
                    Col::Bool => DataType::Boolean,
                    Col::TextArray => list(DataType::Utf8),
                    Col::Int2Vector => list(DataType::Int16),
                    Col::OidVector => list(DataType::Int32),
                    Col::Timestamptz => {
                        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
                    }
                };
                Field::new(*name, dt, true)
            })
            .collect::<Vec<_>>(),
    ))
}

pub(super) fn is_list(dt: &DataType) -> bool {
    matches!(
        dt,
        DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(_, _)
            | DataType::ListView(_)
            | DataType::LargeListView(_)
    )
}

pub(super) fn collatable(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::TEXT_ARRAY
    )
}
