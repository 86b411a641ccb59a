//! Raw BSON documents decoded straight into Arrow builders, one column tree
//! per [`Shape`], without materialising a `Document` per row.

use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Decimal128Builder, Float64Builder, Int32Builder,
    Int64Builder, ListArray, StringBuilder, StructArray, TimestampMillisecondBuilder,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::datatypes::{Field, FieldRef, Fields};
use mongodb::bson::{Bson, RawBsonRef, RawDocument};

use crate::options::InvalidValues;
use crate::types::schema::Shape;

/// A value that does not fit its column; `path` names the field.
#[derive(Debug)]
pub struct Mismatch {
    pub path: Vec<String>,
    pub expected: String,
    pub found: String,
}

impl Mismatch {
    pub fn message(&self) -> String {
        format!(
            "field '{}' holds {} where the column expects {}",
            self.path.join("."),
            self.found,
            self.expected
        )
    }
}

/// The BSON type name of a value, for messages.
fn type_name(value: &RawBsonRef<'_>) -> &'static str {
    match value {
        RawBsonRef::Double(_) => "double",
        RawBsonRef::String(_) => "string",
        RawBsonRef::Array(_) => "array",
        RawBsonRef::Document(_) => "document",
        RawBsonRef::Boolean(_) => "bool",
        RawBsonRef::Null => "null",
        RawBsonRef::RegularExpression(_) => "regex",
        RawBsonRef::JavaScriptCode(_) | RawBsonRef::JavaScriptCodeWithScope(_) => "javascript",
        RawBsonRef::Int32(_) => "int32",
        RawBsonRef::Int64(_) => "int64",
        RawBsonRef::Timestamp(_) => "timestamp",
        RawBsonRef::Binary(_) => "binData",
        RawBsonRef::ObjectId(_) => "objectId",
        RawBsonRef::DateTime(_) => "date",
        RawBsonRef::Symbol(_) => "symbol",
        RawBsonRef::Decimal128(_) => "decimal128",
        RawBsonRef::Undefined => "undefined",
        RawBsonRef::MaxKey => "maxKey",
        RawBsonRef::MinKey => "minKey",
        RawBsonRef::DbPointer(_) => "dbPointer",
    }
}

/// Any value as text: strings as they are, numbers in plain form, the rest
/// as relaxed extended JSON.
pub fn render_text(value: RawBsonRef<'_>) -> String {
    match value {
        RawBsonRef::String(s) | RawBsonRef::Symbol(s) => s.to_string(),
        RawBsonRef::Int32(i) => i.to_string(),
        RawBsonRef::Int64(i) => i.to_string(),
        RawBsonRef::Double(d) => d.to_string(),
        RawBsonRef::Boolean(b) => b.to_string(),
        RawBsonRef::ObjectId(oid) => oid.to_hex(),
        RawBsonRef::Decimal128(d) => match crate::types::decimal::decode(d.bytes()) {
            Some(v) => v.to_plain_string(),
            None => d.to_string(),
        },
        other => match other.to_raw_bson().try_into() {
            Ok(bson) => Bson::into_relaxed_extjson(bson).to_string(),
            Err(_) => type_name(&other).to_string(),
        },
    }
}

/// One column's builder.
pub enum ColumnBuilder {
    Bool(BooleanBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Double(Float64Builder),
    Decimal(Decimal128Builder, i8),
    /// Utf8 of strings, ObjectIds (hex) or anything (`Shape::Text`).
    Text(StringBuilder, Shape),
    DateTime(TimestampMillisecondBuilder),
    Binary(BinaryBuilder),
    Document {
        fields: Fields,
        children: Vec<ColumnBuilder>,
        /// Scratch: which children the current document set.
        set: Vec<bool>,
        validity: Vec<bool>,
    },
    Array {
        item: FieldRef,
        child: Box<ColumnBuilder>,
        offsets: Vec<i32>,
        validity: Vec<bool>,
    },
}

type Step = Result<(), Mismatch>;

impl ColumnBuilder {
    pub fn new(shape: &Shape) -> ColumnBuilder {
        match shape {
            Shape::Bool => ColumnBuilder::Bool(BooleanBuilder::new()),
            Shape::Int32 => ColumnBuilder::Int32(Int32Builder::new()),
            Shape::Int64 => ColumnBuilder::Int64(Int64Builder::new()),
            Shape::Double => ColumnBuilder::Double(Float64Builder::new()),
            Shape::Decimal(scale) => ColumnBuilder::Decimal(
                Decimal128Builder::new().with_data_type(shape.data_type()),
                *scale,
            ),
            Shape::Null | Shape::String | Shape::ObjectId | Shape::Text => {
                ColumnBuilder::Text(StringBuilder::new(), shape.clone())
            }
            Shape::DateTime => {
                ColumnBuilder::DateTime(TimestampMillisecondBuilder::new().with_timezone("UTC"))
            }
            Shape::Binary => ColumnBuilder::Binary(BinaryBuilder::new()),
            Shape::Document(fields) => ColumnBuilder::Document {
                fields: Shape::arrow_fields(fields),
                children: fields.iter().map(|(_, s)| ColumnBuilder::new(s)).collect(),
                set: vec![false; fields.len()],
                validity: Vec::new(),
            },
            Shape::Array(item) => ColumnBuilder::Array {
                item: Arc::new(Field::new("item", item.data_type(), true)),
                child: Box::new(ColumnBuilder::new(item)),
                offsets: vec![0],
                validity: Vec::new(),
            },
        }
    }

    pub fn append_null(&mut self) {
        match self {
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::Int32(b) => b.append_null(),
            ColumnBuilder::Int64(b) => b.append_null(),
            ColumnBuilder::Double(b) => b.append_null(),
            ColumnBuilder::Decimal(b, _) => b.append_null(),
            ColumnBuilder::Text(b, _) => b.append_null(),
            ColumnBuilder::DateTime(b) => b.append_null(),
            ColumnBuilder::Binary(b) => b.append_null(),
            ColumnBuilder::Document {
                children, validity, ..
            } => {
                children.iter_mut().for_each(ColumnBuilder::append_null);
                validity.push(false);
            }
            ColumnBuilder::Array {
                offsets, validity, ..
            } => {
                offsets.push(offsets.last().copied().unwrap_or(0));
                validity.push(false);
            }
        }
    }

    /// Appends `value` (`None`: the field is missing), or NULL when it does
    /// not fit and `invalid` says so.
    pub fn append(&mut self, value: Option<RawBsonRef<'_>>, invalid: InvalidValues) -> Step {
        let Some(value) = value else {
            self.append_null();
            return Ok(());
        };
        if matches!(value, RawBsonRef::Null | RawBsonRef::Undefined) {
            self.append_null();
            return Ok(());
        }
        match self.try_append(value, invalid) {
            Ok(()) => Ok(()),
            Err(mismatch) if invalid == InvalidValues::Null && mismatch.path.is_empty() => {
                self.append_null();
                Ok(())
            }
            Err(mismatch) => Err(mismatch),
        }
    }

    /// Appends a non-null value; on a mismatch at this level nothing is appended.
    fn try_append(&mut self, value: RawBsonRef<'_>, invalid: InvalidValues) -> Step {
        let mismatch = |expected: &str| Mismatch {
            path: Vec::new(),
            expected: expected.to_string(),
            found: type_name(&value).to_string(),
        };
        match self {
            ColumnBuilder::Bool(b) => match value {
                RawBsonRef::Boolean(v) => b.append_value(v),
                _ => return Err(mismatch("bool")),
            },
            ColumnBuilder::Int32(b) => match value {
                RawBsonRef::Int32(v) => b.append_value(v),
                RawBsonRef::Int64(v) if i32::try_from(v).is_ok() => b.append_value(v as i32),
                _ => return Err(mismatch("int32")),
            },
            ColumnBuilder::Int64(b) => match value {
                RawBsonRef::Int32(v) => b.append_value(v as i64),
                RawBsonRef::Int64(v) => b.append_value(v),
                _ => return Err(mismatch("int64")),
            },
            ColumnBuilder::Double(b) => match value {
                RawBsonRef::Double(v) => b.append_value(v),
                RawBsonRef::Int32(v) => b.append_value(v as f64),
                RawBsonRef::Int64(v) => b.append_value(v as f64),
                _ => return Err(mismatch("double")),
            },
            ColumnBuilder::Decimal(b, scale) => {
                let unscaled = match value {
                    RawBsonRef::Decimal128(d) => {
                        crate::types::decimal::decode(d.bytes()).and_then(|v| v.unscaled_at(*scale))
                    }
                    RawBsonRef::Int32(v) => (v as i128).checked_mul(10i128.pow(*scale as u32)),
                    RawBsonRef::Int64(v) => (v as i128).checked_mul(10i128.pow(*scale as u32)),
                    _ => None,
                };
                match unscaled {
                    Some(v) if v.unsigned_abs() < 10u128.pow(38) => b.append_value(v),
                    _ => {
                        return Err(mismatch(&format!(
                            "decimal128 with at most {scale} decimals"
                        )));
                    }
                }
            }
            ColumnBuilder::Text(b, shape) => match (&*shape, value) {
                (Shape::String, RawBsonRef::String(s) | RawBsonRef::Symbol(s)) => b.append_value(s),
                (Shape::ObjectId, RawBsonRef::ObjectId(oid)) => b.append_value(oid.to_hex()),
                (Shape::Text | Shape::Null, value) => b.append_value(render_text(value)),
                (shape, _) => return Err(mismatch(&shape.describe())),
            },
            ColumnBuilder::DateTime(b) => match value {
                RawBsonRef::DateTime(v) => b.append_value(v.timestamp_millis()),
                _ => return Err(mismatch("date")),
            },
            ColumnBuilder::Binary(b) => match value {
                RawBsonRef::Binary(v) => b.append_value(v.bytes),
                _ => return Err(mismatch("binData")),
            },
            ColumnBuilder::Document {
                fields,
                children,
                set,
                validity,
            } => {
                let RawBsonRef::Document(doc) = value else {
                    return Err(mismatch("document"));
                };
                set.iter_mut().for_each(|s| *s = false);
                let outcome = append_fields(doc, fields, children, set, invalid);
                // Keep children aligned even when a nested value failed.
                for (child, was_set) in children.iter_mut().zip(set.iter()) {
                    if !was_set {
                        child.append_null();
                    }
                }
                validity.push(true);
                outcome?;
            }
            ColumnBuilder::Array {
                child,
                offsets,
                validity,
                ..
            } => {
                let RawBsonRef::Array(items) = value else {
                    return Err(mismatch("array"));
                };
                let mut count = 0i32;
                let mut outcome = Ok(());
                for item in items {
                    let Ok(item) = item else {
                        continue;
                    };
                    count += 1;
                    if let Err(mut m) = child.append(Some(item), invalid) {
                        child.append_null();
                        m.path.insert(0, "[]".into());
                        outcome = outcome.and(Err(m));
                    }
                }
                offsets.push(offsets.last().copied().unwrap_or(0) + count);
                validity.push(true);
                outcome?;
            }
        }
        Ok(())
    }

    pub fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::Int32(b) => Arc::new(b.finish()),
            ColumnBuilder::Int64(b) => Arc::new(b.finish()),
            ColumnBuilder::Double(b) => Arc::new(b.finish()),
            ColumnBuilder::Decimal(b, _) => Arc::new(b.finish()),
            ColumnBuilder::Text(b, _) => Arc::new(b.finish()),
            ColumnBuilder::DateTime(b) => Arc::new(b.finish()),
            ColumnBuilder::Binary(b) => Arc::new(b.finish()),
            ColumnBuilder::Document {
                fields,
                children,
                validity,
                ..
            } => {
                let arrays = children.iter_mut().map(ColumnBuilder::finish).collect();
                let nulls = NullBuffer::from(std::mem::take(validity));
                if fields.is_empty() {
                    return Arc::new(StructArray::new_empty_fields(nulls.len(), Some(nulls)));
                }
                Arc::new(StructArray::new(fields.clone(), arrays, Some(nulls)))
            }
            ColumnBuilder::Array {
                item,
                child,
                offsets,
                validity,
            } => {
                let values = child.finish();
                let offsets = OffsetBuffer::new(std::mem::replace(offsets, vec![0]).into());
                let nulls = NullBuffer::from(std::mem::take(validity));
                Arc::new(ListArray::new(
                    Arc::clone(item),
                    offsets,
                    values,
                    Some(nulls),
                ))
            }
        }
    }
}

/// Appends the fields of `doc` to the children named in `fields`, marking
/// each one set; unknown fields are ignored, a repeated name keeps the first.
fn append_fields(
    doc: &RawDocument,
    fields: &Fields,
    children: &mut [ColumnBuilder],
    set: &mut [bool],
    invalid: InvalidValues,
) -> Step {
    let mut outcome = Ok(());
    // Documents of one collection usually list their fields in the same
    // order: try the field after the last one found before searching.
    let mut next = 0;
    for element in doc {
        let Ok((name, value)) = element else {
            continue;
        };
        let index = match fields.get(next) {
            Some(field) if field.name() == name => next,
            _ => match fields.iter().position(|f| f.name() == name) {
                Some(index) => index,
                None => continue,
            },
        };
        next = index + 1;
        if set[index] {
            continue;
        }
        set[index] = true;
        if let Err(mut m) = children[index].append(Some(value), invalid) {
            children[index].append_null();
            m.path.insert(0, name.to_string());
            outcome = outcome.and(Err(m));
        }
    }
    outcome
}

/// A whole row decoder: the top-level columns of a scan.
pub struct RowDecoder {
    fields: Fields,
    columns: Vec<ColumnBuilder>,
    set: Vec<bool>,
    rows: usize,
    invalid: InvalidValues,
}

impl RowDecoder {
    pub fn new(columns: &[(String, Shape)], invalid: InvalidValues) -> Self {
        Self {
            fields: Shape::arrow_fields(columns),
            columns: columns.iter().map(|(_, s)| ColumnBuilder::new(s)).collect(),
            set: vec![false; columns.len()],
            rows: 0,
            invalid,
        }
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn append(&mut self, doc: &RawDocument) -> Step {
        self.set.iter_mut().for_each(|s| *s = false);
        let outcome = append_fields(
            doc,
            &self.fields,
            &mut self.columns,
            &mut self.set,
            self.invalid,
        );
        for (column, was_set) in self.columns.iter_mut().zip(self.set.iter()) {
            if !was_set {
                column.append_null();
            }
        }
        self.rows += 1;
        outcome
    }

    pub fn finish(&mut self) -> Vec<ArrayRef> {
        self.rows = 0;
        self.columns.iter_mut().map(ColumnBuilder::finish).collect()
    }
}
