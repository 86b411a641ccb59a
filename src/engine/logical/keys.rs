//! A table's rows named by their primary key: the keys of a batch, kept
//! as text in journal entries (JSON lines, so any key type survives the
//! metadata store) and read back, and the filter matching them on a copy.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{Expr, col, lit};

/// Keys in one journal entry (a larger write makes several entries).
const KEYS_PER_ENTRY: usize = 10_000;

/// `batches` of key columns as journal texts (JSON lines), at most
/// [`KEYS_PER_ENTRY`] keys each; `[None]` for "every row".
pub fn encode_keys(batches: Option<&[RecordBatch]>) -> Result<Vec<Option<String>>> {
    let Some(batches) = batches else {
        return Ok(vec![None]);
    };
    let mut texts = Vec::new();
    let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
    let mut in_entry = 0usize;
    for batch in batches {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let take = (KEYS_PER_ENTRY - in_entry).min(batch.num_rows() - offset);
            writer.write(&batch.slice(offset, take))?;
            offset += take;
            in_entry += take;
            if in_entry == KEYS_PER_ENTRY {
                writer.finish()?;
                let done = std::mem::replace(
                    &mut writer,
                    arrow::json::LineDelimitedWriter::new(Vec::new()),
                );
                texts.push(Some(text_of(done.into_inner())?));
                in_entry = 0;
            }
        }
    }
    if in_entry > 0 {
        writer.finish()?;
        texts.push(Some(text_of(writer.into_inner())?));
    }
    Ok(texts)
}

fn text_of(bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes)
        .map_err(|e| DataFusionError::Internal(format!("journal keys are not UTF-8: {e}")))
}

/// The keys of a journal entry, in the key columns' types.
pub fn decode_keys(text: &str, key_schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
    let reader = arrow::json::ReaderBuilder::new(Arc::clone(key_schema))
        .build(std::io::Cursor::new(text.as_bytes()))?;
    reader
        .map(|batch| batch.map_err(DataFusionError::from))
        .collect()
}

/// The key columns of `schema` (the table's declared or a copy's).
pub fn key_schema(schema: &Schema, key: &[String]) -> Result<SchemaRef> {
    let fields = key
        .iter()
        .map(|name| Ok(schema.field_with_name(name)?.clone()))
        .collect::<Result<Vec<_>>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// `keys` projected out of `batch` (rows of the table).
pub fn keys_of(batch: &RecordBatch, key: &[String]) -> Result<RecordBatch> {
    let indices = key
        .iter()
        .map(|name| Ok(batch.schema().index_of(name)?))
        .collect::<Result<Vec<_>>>()?;
    Ok(batch.project(&indices)?)
}

/// A filter matching the rows of `keys` (rows `from..to` of it): `k IN
/// (…)` for one key column, else `(k1 = … AND k2 = …) OR …`.
pub fn key_filter(keys: &RecordBatch, from: usize, to: usize) -> Result<Expr> {
    let schema = keys.schema();
    let value = |column: usize, row: usize| -> Result<Expr> {
        Ok(lit(ScalarValue::try_from_array(keys.column(column), row)?))
    };
    if keys.num_columns() == 1 {
        let values = (from..to)
            .map(|row| value(0, row))
            .collect::<Result<Vec<_>>>()?;
        return Ok(col(quoted(schema.field(0).name())).in_list(values, false));
    }
    let rows = (from..to)
        .map(|row| {
            let parts = (0..keys.num_columns())
                .map(|c| Ok(col(quoted(schema.field(c).name())).eq(value(c, row)?)))
                .collect::<Result<Vec<_>>>()?;
            Ok(datafusion::logical_expr::utils::conjunction(parts).unwrap_or(lit(true)))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(datafusion::logical_expr::utils::disjunction(rows).unwrap_or(lit(false)))
}

/// A column reference that keeps its name as written (`col` would fold an
/// unquoted name and split at dots).
fn quoted(name: &str) -> datafusion::common::Column {
    datafusion::common::Column::new_unqualified(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    #[test]
    fn keys_survive_the_journal_text_in_entries_of_bounded_size() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("Region", DataType::Utf8, false),
        ]));
        let rows = KEYS_PER_ENTRY + 3;
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from_iter_values(0..rows as i64)),
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| format!("o'{i}\"\n")),
                )),
            ],
        )
        .expect("batch");
        let texts = encode_keys(Some(std::slice::from_ref(&batch))).expect("encodes");
        assert_eq!(texts.len(), 2);
        let mut back = Vec::new();
        for text in texts {
            back.extend(decode_keys(&text.expect("keys"), &schema).expect("decodes"));
        }
        let back = arrow::compute::concat_batches(&schema, &back).expect("concat");
        assert_eq!(back, batch);
        assert_eq!(encode_keys(None).expect("all"), vec![None]);
        assert!(encode_keys(Some(&[])).expect("none").is_empty());
    }

    #[test]
    fn a_key_filter_names_each_key() {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![4, 5, 6]))])
            .expect("batch");
        let filter = key_filter(&batch, 1, 3).expect("filter");
        assert_eq!(filter.to_string(), "id IN ([Int64(5), Int64(6)])");
    }
}
