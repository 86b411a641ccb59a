//! Options of a `kind = "files"` source, parsed once from its `[[source]]`
//! entry:
//!
//! ```toml
//! [[source]]
//! name = "lake"
//! kind = "files"
//! url = "file:///data/lake/"
//! format = "parquet"      # only files of this format (parquet, csv, json); default: all
//! csv_has_header = true   # default true
//! csv_delimiter = ";"     # one ASCII character; default ","
//! schema = "public"       # the one schema the tables are in; default "public"
//! ```

use std::fmt;

use datafusion::error::Result;
use koios_connector::SourceSpec;
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::types::FileKind;

/// Per-source reading options.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOptions {
    /// Only files of this format are tables; `None`: every known format.
    #[serde(rename = "format", default)]
    pub forced_format: Option<FileKind>,
    #[serde(default = "yes")]
    pub csv_has_header: bool,
    #[serde(default = "comma", deserialize_with = "one_ascii_character")]
    pub csv_delimiter: u8,
    /// The schema every table of the source is in.
    #[serde(default = "public")]
    pub schema: String,
}

impl Default for FileOptions {
    fn default() -> Self {
        Self {
            forced_format: None,
            csv_has_header: yes(),
            csv_delimiter: comma(),
            schema: public(),
        }
    }
}

impl FileOptions {
    pub fn from_spec(spec: &SourceSpec) -> Result<Self> {
        spec.parse_options()
    }
}

fn yes() -> bool {
    true
}

fn comma() -> u8 {
    b','
}

fn public() -> String {
    "public".into()
}

/// `csv_delimiter`: a string of exactly one ASCII character, as a byte.
fn one_ascii_character<'de, D: Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    d.deserialize_str(OneAsciiCharacter)
}

struct OneAsciiCharacter;

impl Visitor<'_> for OneAsciiCharacter {
    type Value = u8;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("one ASCII character")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u8, E> {
        // One byte long means one ASCII character in UTF-8.
        match v.as_bytes() {
            [byte] => Ok(*byte),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(options: &str) -> Result<FileOptions> {
        FileOptions::from_spec(&SourceSpec::from_toml("lake", "files", options)?)
    }

    #[test]
    fn valid_configs_parse_as_before() {
        let defaults = parse("").expect("valid");
        assert_eq!(defaults, FileOptions::default());
        assert_eq!(defaults.forced_format, None);
        assert!(defaults.csv_has_header);
        assert_eq!(defaults.csv_delimiter, b',');
        assert_eq!(defaults.schema, "public");
        for (written, kind) in [
            ("parquet", FileKind::Parquet),
            ("PARQUET", FileKind::Parquet),
            ("csv", FileKind::Csv),
            ("Csv", FileKind::Csv),
            ("json", FileKind::Json),
            ("ndjson", FileKind::Json),
            ("jsonl", FileKind::Json),
        ] {
            let options = parse(&format!("format = \"{written}\"")).expect(written);
            assert_eq!(options.forced_format, Some(kind), "{written}");
        }
        let all = parse("csv_has_header = false\ncsv_delimiter = \"|\"\nschema = \"raw\"")
            .expect("valid");
        assert!(!all.csv_has_header);
        assert_eq!(all.csv_delimiter, b'|');
        assert_eq!(all.schema, "raw");
    }

    #[test]
    fn unknown_keys_and_wrong_values_name_the_key() {
        let message = |options: &str| parse(options).expect_err(options).to_string();
        let unknown = message("delimiter = \";\"");
        assert!(
            unknown.contains(
                "source 'lake' (kind files): option 'delimiter': unknown field `delimiter`, expected one of \
                 `format`, `csv_has_header`, `csv_delimiter`, `schema`"
            ),
            "{unknown}"
        );
        let wrong = message("format = \"avro\"");
        assert!(
            wrong.contains(
                "option 'format': invalid value: string \"avro\", expected parquet, csv or json"
            ),
            "{wrong}"
        );
        let wrong = message("csv_delimiter = \"ab\"");
        assert!(
            wrong.contains(
                "option 'csv_delimiter': invalid value: string \"ab\", expected one ASCII character"
            ),
            "{wrong}"
        );
        let wrong = message("csv_delimiter = \"é\"");
        assert!(wrong.contains("option 'csv_delimiter'"), "{wrong}");
        let wrong = message("csv_has_header = \"yes\"");
        assert!(
            wrong.contains(
                "option 'csv_has_header': invalid type: string \"yes\", expected a boolean"
            ),
            "{wrong}"
        );
    }
}
