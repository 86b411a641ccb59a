//! The file formats a `files` source reads: which files are data (by
//! extension) and how the `format` option names them. Decoding itself is
//! DataFusion's Parquet, CSV and newline-delimited JSON readers, set up in
//! [`crate::scan`].

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// File formats the connector reads, recognised by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Parquet,
    Csv,
    Json,
}

impl FileKind {
    /// The format a file name's extension announces, if any.
    pub fn from_file_name(name: &str) -> Option<(FileKind, &str)> {
        let lower = name.to_ascii_lowercase();
        for (ext, kind) in [
            (".parquet", FileKind::Parquet),
            (".csv", FileKind::Csv),
            (".json", FileKind::Json),
            (".jsonl", FileKind::Json),
            (".ndjson", FileKind::Json),
        ] {
            if lower.ends_with(ext) && lower.len() > ext.len() {
                return Some((kind, &name[name.len() - ext.len()..]));
            }
        }
        None
    }
}

/// The `format` option: a format's name in any case; `ndjson` and `jsonl`
/// also name JSON, as the extensions do.
impl<'de> Deserialize<'de> for FileKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(FileKindVisitor)
    }
}

struct FileKindVisitor;

impl Visitor<'_> for FileKindVisitor {
    type Value = FileKind;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("parquet, csv or json")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<FileKind, E> {
        match v.to_ascii_lowercase().as_str() {
            "parquet" => Ok(FileKind::Parquet),
            "csv" => Ok(FileKind::Csv),
            "json" | "ndjson" | "jsonl" => Ok(FileKind::Json),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_extensions() {
        assert_eq!(
            FileKind::from_file_name("a.parquet"),
            Some((FileKind::Parquet, ".parquet"))
        );
        assert_eq!(
            FileKind::from_file_name("Orders.CSV"),
            Some((FileKind::Csv, ".CSV"))
        );
        assert_eq!(
            FileKind::from_file_name("x.ndjson"),
            Some((FileKind::Json, ".ndjson"))
        );
        assert_eq!(FileKind::from_file_name(".csv"), None);
        assert_eq!(FileKind::from_file_name("readme.md"), None);
    }
}
