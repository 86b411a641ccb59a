//! Type mapping: the [`Shape`] of a column (what BSON it holds and which
//! Arrow type reads it), inferred by merging the shapes of sampled documents.
//!
//! | BSON | Arrow |
//! |---|---|
//! | bool | Boolean |
//! | int32 | Int32 (with int64: Int64) |
//! | int64 | Int64 |
//! | double (or mixed with ints) | Float64 |
//! | decimal128 (or mixed with ints) | Decimal128(38, widest scale sampled) |
//! | string, symbol | Utf8 |
//! | objectId | Utf8, 24 hex digits |
//! | date | Timestamp(ms, UTC) |
//! | binData | Binary |
//! | document | Struct (deeper than `max_depth`: JSON text) |
//! | array | List of the merged element shape |
//! | anything else, or incompatible types mixed | Utf8 (strings as they are, other values as relaxed extended JSON) |
//!
//! A field missing from some documents, or null in some, is nullable (every
//! column is). A field only ever null or missing is Utf8.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use mongodb::bson::{Bson, Document};

/// The largest scale a Decimal128 column gets: Arrow's Decimal128 holds 38
/// digits, and integers need room too.
const MAX_DECIMAL_SCALE: i32 = 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Only nulls (or missing) seen so far; read as text.
    Null,
    Bool,
    Int32,
    Int64,
    Double,
    Decimal(i8),
    String,
    ObjectId,
    DateTime,
    Binary,
    /// Any BSON value, read as text (mixed types, JSON, deep documents).
    Text,
    Document(Vec<(String, Shape)>),
    Array(Box<Shape>),
}

impl Shape {
    /// The shape of one value, documents nested at most `depth` more levels.
    pub fn of(value: &Bson, depth: usize) -> Shape {
        match value {
            Bson::Null | Bson::Undefined => Shape::Null,
            Bson::Boolean(_) => Shape::Bool,
            Bson::Int32(_) => Shape::Int32,
            Bson::Int64(_) => Shape::Int64,
            Bson::Double(_) => Shape::Double,
            Bson::Decimal128(d) => match crate::types::decimal::decode(d.bytes()) {
                Some(v) if v.scale() <= MAX_DECIMAL_SCALE => Shape::Decimal(v.scale() as i8),
                _ => Shape::Text,
            },
            Bson::String(_) | Bson::Symbol(_) => Shape::String,
            Bson::ObjectId(_) => Shape::ObjectId,
            Bson::DateTime(_) => Shape::DateTime,
            Bson::Binary(_) => Shape::Binary,
            Bson::Document(doc) if depth > 0 && !doc.is_empty() => {
                Shape::Document(Self::fields_of(doc, depth - 1))
            }
            Bson::Array(items) if depth > 0 => {
                Shape::Array(Box::new(items.iter().fold(Shape::Null, |acc, item| {
                    acc.merge(Shape::of(item, depth - 1))
                })))
            }
            _ => Shape::Text,
        }
    }

    /// The fields of a document, in order.
    pub fn fields_of(doc: &Document, depth: usize) -> Vec<(String, Shape)> {
        doc.iter()
            .map(|(name, value)| (name.clone(), Shape::of(value, depth)))
            .collect()
    }

    /// The narrowest shape that holds values of both.
    pub fn merge(self, other: Shape) -> Shape {
        use Shape::*;
        match (self, other) {
            (Null, x) | (x, Null) => x,
            (a, b) if a == b => a,
            (Int32, Int64) | (Int64, Int32) => Int64,
            (Int32 | Int64 | Double, Int32 | Int64 | Double) => Double,
            (Decimal(a), Decimal(b)) => Decimal(a.max(b)),
            (Decimal(s), Int32 | Int64) | (Int32 | Int64, Decimal(s)) => Decimal(s),
            (Document(a), Document(b)) => Document(merge_fields(a, b)),
            (Array(a), Array(b)) => Array(Box::new(a.merge(*b))),
            _ => Text,
        }
    }

    pub fn data_type(&self) -> DataType {
        match self {
            Shape::Null | Shape::String | Shape::ObjectId | Shape::Text => DataType::Utf8,
            Shape::Bool => DataType::Boolean,
            Shape::Int32 => DataType::Int32,
            Shape::Int64 => DataType::Int64,
            Shape::Double => DataType::Float64,
            Shape::Decimal(scale) => DataType::Decimal128(38, *scale),
            Shape::DateTime => DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            Shape::Binary => DataType::Binary,
            Shape::Document(fields) => DataType::Struct(Self::arrow_fields(fields)),
            Shape::Array(item) => {
                DataType::List(Arc::new(Field::new("item", item.data_type(), true)))
            }
        }
    }

    pub fn arrow_fields(fields: &[(String, Shape)]) -> Fields {
        fields
            .iter()
            .map(|(name, shape)| Field::new(name, shape.data_type(), true))
            .collect()
    }

    /// The Arrow schema of a table with these columns.
    pub fn schema(columns: &[(String, Shape)]) -> SchemaRef {
        Arc::new(Schema::new(Self::arrow_fields(columns)))
    }

    /// The name used in messages.
    pub fn describe(&self) -> String {
        match self {
            Shape::Null => "null".into(),
            Shape::Bool => "bool".into(),
            Shape::Int32 => "int32".into(),
            Shape::Int64 => "int64".into(),
            Shape::Double => "double".into(),
            Shape::Decimal(s) => format!("decimal128 (scale {s})"),
            Shape::String => "string".into(),
            Shape::ObjectId => "objectId".into(),
            Shape::DateTime => "date".into(),
            Shape::Binary => "binData".into(),
            Shape::Text => "any value as text".into(),
            Shape::Document(_) => "document".into(),
            Shape::Array(_) => "array".into(),
        }
    }

    /// Parses declared columns: `"_id objectid, total decimal(12,2), tags array<text>"`.
    pub fn parse_columns(text: &str) -> Result<Vec<(String, Shape)>, String> {
        let mut columns = Vec::new();
        for part in split_top_level(text) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let (name, ty) = part
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("\"{part}\" must be \"name type\""))?;
            if columns.iter().any(|(n, _)| n == name) {
                return Err(format!("column \"{name}\" is declared twice"));
            }
            columns.push((name.to_string(), Self::parse_type(ty.trim())?));
        }
        if columns.is_empty() {
            return Err("no columns declared".into());
        }
        Ok(columns)
    }

    /// One declared type (`bigint`, `decimal(12,2)`, `array<text>` …).
    pub fn parse_type(ty: &str) -> Result<Shape, String> {
        let lower = ty.to_ascii_lowercase();
        if let Some(inner) = lower
            .strip_prefix("array<")
            .and_then(|rest| rest.strip_suffix('>'))
        {
            return Ok(Shape::Array(Box::new(Self::parse_type(inner.trim())?)));
        }
        if let Some(args) = lower
            .strip_prefix("decimal(")
            .or_else(|| lower.strip_prefix("numeric("))
            .and_then(|rest| rest.strip_suffix(')'))
        {
            let scale = args
                .split(',')
                .nth(1)
                .map(|s| s.trim().parse::<i32>())
                .unwrap_or(Ok(0))
                .map_err(|_| format!("bad decimal type \"{ty}\""))?;
            if !(0..=MAX_DECIMAL_SCALE).contains(&scale) {
                return Err(format!("decimal scale must be 0..={MAX_DECIMAL_SCALE}"));
            }
            return Ok(Shape::Decimal(scale as i8));
        }
        Ok(match lower.as_str() {
            "bool" | "boolean" => Shape::Bool,
            "int" | "int4" | "integer" | "int32" => Shape::Int32,
            "bigint" | "int8" | "int64" | "long" => Shape::Int64,
            "double" | "float8" | "float" | "double precision" => Shape::Double,
            "text" | "string" | "varchar" => Shape::String,
            "objectid" => Shape::ObjectId,
            "timestamp" | "timestamptz" | "date" => Shape::DateTime,
            "bytea" | "binary" => Shape::Binary,
            "json" | "any" => Shape::Text,
            _ => {
                return Err(format!(
                    "unknown type \"{ty}\" (known: bool, int, bigint, double, decimal(p,s), text, objectid, timestamp, bytea, json, array<type>)"
                ));
            }
        })
    }
}

/// Fields of both, in order of first appearance.
fn merge_fields(a: Vec<(String, Shape)>, b: Vec<(String, Shape)>) -> Vec<(String, Shape)> {
    let mut merged = a;
    for (name, shape) in b {
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, existing)) => {
                let previous = std::mem::replace(existing, Shape::Null);
                *existing = previous.merge(shape);
            }
            None => merged.push((name, shape)),
        }
    }
    merged
}

/// Splits on commas outside parentheses and angle brackets.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' | '<' => depth += 1,
            ')' | '>' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// Columns of a collection from sampled documents: `_id` first, then fields
/// in order of first appearance.
pub fn infer(sample: &[Document], max_depth: usize) -> Vec<(String, Shape)> {
    let mut columns: Vec<(String, Shape)> = vec![("_id".into(), Shape::Null)];
    for doc in sample {
        columns = merge_fields(columns, Shape::fields_of(doc, max_depth));
    }
    if sample.is_empty() {
        columns[0].1 = Shape::ObjectId;
    }
    columns
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

    #[test]
    fn merges_to_the_widest_type() {
        let sample = vec![
            doc! { "_id": 1, "n": 1_i32, "x": 1.5, "s": "a", "d": { "a": 1 }, "l": [1] },
            doc! { "_id": 2, "n": 2_i64, "x": 2_i32, "s": 3, "d": { "b": "x" }, "l": [2.5], "sparse": true },
        ];
        let columns = infer(&sample, 4);
        let get = |name: &str| {
            columns
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.clone())
                .expect("column")
        };
        assert_eq!(columns[0].0, "_id");
        assert_eq!(get("n"), Shape::Int64);
        assert_eq!(get("x"), Shape::Double);
        assert_eq!(get("s"), Shape::Text);
        assert_eq!(
            get("d"),
            Shape::Document(vec![
                ("a".into(), Shape::Int32),
                ("b".into(), Shape::String)
            ])
        );
        assert_eq!(get("l"), Shape::Array(Box::new(Shape::Double)));
        assert_eq!(get("sparse"), Shape::Bool);
        // Beyond the depth limit a document is text.
        assert_eq!(
            infer(&[doc! { "d": { "e": { "f": 1 } } }], 1)[1].1,
            Shape::Document(vec![("e".into(), Shape::Text)])
        );
    }

    #[test]
    fn parses_declared_columns() {
        let columns =
            Shape::parse_columns("_id objectid, total decimal(12,2), tags array<text>, meta json")
                .expect("parses");
        assert_eq!(columns[1].1, Shape::Decimal(2));
        assert_eq!(columns[2].1, Shape::Array(Box::new(Shape::String)));
        assert!(Shape::parse_columns("a whatever").is_err());
    }
}
