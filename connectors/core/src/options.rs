//! Typed source options: the machinery behind [`SourceSpec::parse_options`]
//! and [`SourceSpec::parse_option_group`].
//!
//! A connector declares its options as one serde struct with
//! `#[serde(deny_unknown_fields)]`, so serde itself refuses a mistyped key
//! and names the keys it knows: no connector keeps a list of option names.
//!
//! Options several connectors share (the TLS pair, the SQL pool and split
//! settings) are a struct of their own, embedded in the connector's struct.
//! `#[serde(flatten)]` cannot embed them: serde does not support it together
//! with `deny_unknown_fields` (the outer struct sees every key as its own).
//! Instead an [`OptionGroup`] names the group it embeds; the keys that
//! group's struct declares — read from serde's own field list by
//! [`struct_fields`], never typed by hand — are split off and parsed as that
//! group, the others as the outer struct, each denying unknown keys.
//!
//! [`SourceSpec::parse_options`]: crate::SourceSpec::parse_options
//! [`SourceSpec::parse_option_group`]: crate::SourceSpec::parse_option_group

use std::cell::Cell;
use std::fmt;

use datafusion::error::Result;
use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, forward_to_deserialize_any};

use crate::SourceSpec;

/// Options parsed as one struct that may embed a shared group (see the
/// module documentation). The embedded struct is a `#[serde(skip)]` field
/// of the implementing struct, filled by [`OptionGroup::embed`].
pub trait OptionGroup: DeserializeOwned {
    /// The group this struct embeds; [`NoGroup`] when it embeds none.
    type Embedded: OptionGroup;

    /// Stores the parsed embedded group in its field.
    fn embed(&mut self, embedded: Self::Embedded);

    /// Checks serde cannot express because they involve several keys;
    /// `Err((key, message))` blames one key.
    fn check(&self) -> std::result::Result<(), (&'static str, String)> {
        Ok(())
    }

    /// Adds every key this struct and the groups it embeds read. Only
    /// [`NoGroup`] overrides it (it ends the chain).
    fn keys(out: &mut Vec<&'static str>) {
        out.extend_from_slice(struct_fields::<Self>());
        Self::Embedded::keys(out);
    }

    /// Parses `entries` (every key belongs to this struct or a group it
    /// embeds). Only [`NoGroup`] overrides it.
    fn parse(spec: &SourceSpec, entries: Vec<(&str, &toml::Value)>) -> Result<Self> {
        let mut theirs = Vec::new();
        Self::Embedded::keys(&mut theirs);
        let (embedded, own): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .partition(|(key, _)| theirs.contains(key));
        let embedded = Self::Embedded::parse(spec, embedded)?;
        // An unknown key is reported against every key the source takes,
        // not only this struct's own.
        let mut known = Vec::new();
        Self::keys(&mut known);
        let mut parsed: Self = spec.deserialize_entries(own, Some(&known))?;
        parsed.embed(embedded);
        parsed
            .check()
            .map_err(|(key, message)| spec.option_error(Some(key), &message))?;
        Ok(parsed)
    }
}

/// The embedded group of an [`OptionGroup`] that embeds nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoGroup {}

impl OptionGroup for NoGroup {
    type Embedded = NoGroup;

    fn embed(&mut self, _: NoGroup) {}

    fn keys(_: &mut Vec<&'static str>) {}

    fn parse(spec: &SourceSpec, entries: Vec<(&str, &toml::Value)>) -> Result<Self> {
        // Never reached with keys (this group declares none), but if it
        // were, the key is unknown and deny_unknown_fields says so.
        spec.deserialize_entries(entries, None)
    }
}

/// The field names serde derives for struct `T` (as it passes them to
/// `Deserializer::deserialize_struct`); empty when `T` is not a struct.
pub fn struct_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let seen = Cell::new(None);
    // The probe fails on purpose once it has seen the field list: nothing
    // is deserialized, only the list is recorded.
    let _ = T::deserialize(FieldProbe { seen: &seen });
    seen.get().unwrap_or(&[])
}

/// A deserializer that records the field list of the struct asked of it.
struct FieldProbe<'a> {
    seen: &'a Cell<Option<&'static [&'static str]>>,
}

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        self.seen.set(Some(fields));
        Err(de::Error::custom("fields recorded"))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// A failure while deserializing options, with the key it concerns when
/// known.
#[derive(Debug)]
pub(crate) struct OptionError {
    pub(crate) key: Option<String>,
    pub(crate) message: String,
    /// The key is not one the struct declares.
    pub(crate) unknown: bool,
}

impl OptionError {
    /// The error's message, listing `known` as the expected keys when the
    /// key is unknown.
    pub(crate) fn message(&self, known: Option<&[&str]>) -> String {
        match (known, &self.key) {
            (Some(known), Some(key)) if self.unknown => unknown_key(key, known),
            _ => self.message.clone(),
        }
    }

    fn at(mut self, key: &str) -> Self {
        self.key.get_or_insert_with(|| key.to_string());
        self
    }
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OptionError {}

impl de::Error for OptionError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            key: None,
            message: msg.to_string(),
            unknown: false,
        }
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        Self {
            key: Some(field.to_string()),
            message: unknown_key(field, expected),
            unknown: true,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Self {
            key: Some(field.to_string()),
            message: "missing".into(),
            unknown: false,
        }
    }
}

/// Serde's wording for an unknown field, over any list of known keys.
fn unknown_key(key: &str, known: &[&str]) -> String {
    let quoted: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
    match quoted.as_slice() {
        [] => format!("unknown field `{key}`, there are no fields"),
        [one] => format!("unknown field `{key}`, expected {one}"),
        [a, b] => format!("unknown field `{key}`, expected {a} or {b}"),
        _ => format!(
            "unknown field `{key}`, expected one of {}",
            quoted.join(", ")
        ),
    }
}

/// Serves a source's `key = value` entries to serde as one map, so that
/// every error says which key it is about.
pub(crate) struct EntriesDeserializer<'a> {
    entries: std::vec::IntoIter<(&'a str, &'a toml::Value)>,
    pending: Option<(&'a str, &'a toml::Value)>,
}

impl<'a> EntriesDeserializer<'a> {
    pub(crate) fn new(entries: Vec<(&'a str, &'a toml::Value)>) -> Self {
        Self {
            entries: entries.into_iter(),
            pending: None,
        }
    }
}

impl<'de> Deserializer<'de> for EntriesDeserializer<'_> {
    type Error = OptionError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, OptionError> {
        visitor.visit_map(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de> MapAccess<'de> for EntriesDeserializer<'_> {
    type Error = OptionError;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, OptionError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        self.pending = Some((key, value));
        // An unknown key fails here (deny_unknown_fields), naming itself.
        let key_de: de::value::StrDeserializer<'_, OptionError> = key.into_deserializer();
        seed.deserialize(key_de).map(Some).map_err(|e| e.at(key))
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, OptionError> {
        let (key, value) = self
            .pending
            .take()
            .ok_or_else(|| de::Error::custom("a value was asked before its key"))?;
        seed.deserialize(value.clone()).map_err(|e| OptionError {
            key: Some(key.to_string()),
            message: e.message().to_string(),
            unknown: false,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// `deserialize_with` for a count that may be zero, so the message says
/// what to write instead of naming a Rust type.
pub fn non_negative<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    d.deserialize_i64(CountVisitor { min: 0 })
}

/// `deserialize_with` for a count of at least one.
pub fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    d.deserialize_i64(CountVisitor { min: 1 })
}

struct CountVisitor {
    min: i64,
}

impl Visitor<'_> for CountVisitor {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.min {
            0 => f.write_str("a non-negative integer"),
            1 => f.write_str("a positive integer"),
            n => write!(f, "an integer of at least {n}"),
        }
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<usize, E> {
        if v < self.min {
            return Err(E::invalid_value(de::Unexpected::Signed(v), &self));
        }
        usize::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
        match i64::try_from(v) {
            Ok(v) => self.visit_i64(v),
            Err(_) => Err(E::invalid_value(de::Unexpected::Unsigned(v), &self)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{TlsMode, TlsOptions};

    /// A connector's options embedding the TLS group.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[serde(default, deserialize_with = "positive_opt")]
        size: Option<usize>,
        #[serde(default)]
        names: Vec<String>,
        #[serde(skip)]
        tls: TlsOptions,
    }

    fn positive_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
        positive(d).map(Some)
    }

    impl OptionGroup for Sample {
        type Embedded = TlsOptions;

        fn embed(&mut self, tls: TlsOptions) {
            self.tls = tls;
        }
    }

    fn spec(options: &str) -> SourceSpec {
        SourceSpec::from_toml("s", "k", options).expect("toml")
    }

    #[test]
    fn reads_field_names_from_serde() {
        assert_eq!(struct_fields::<Sample>(), &["size", "names"]);
        assert_eq!(struct_fields::<TlsOptions>(), &["tls", "tls_ca_file"]);
        assert!(struct_fields::<NoGroup>().is_empty());
        assert!(struct_fields::<String>().is_empty());
        let mut keys = Vec::new();
        Sample::keys(&mut keys);
        assert_eq!(keys, ["size", "names", "tls", "tls_ca_file"]);
    }

    #[test]
    fn splits_keys_between_a_struct_and_its_group() {
        let parsed: Sample = spec("size = 3\nnames = [\"a\"]\ntls = \"require\"")
            .parse_option_group()
            .expect("valid");
        assert_eq!(parsed.size, Some(3));
        assert_eq!(parsed.names, ["a"]);
        assert_eq!(parsed.tls.mode, Some(TlsMode::Require));
        let parsed: Sample = spec("").parse_option_group().expect("valid");
        assert_eq!((parsed.size, parsed.tls.mode), (None, None));
    }

    #[test]
    fn errors_name_the_key_and_what_was_expected() {
        let err = spec("sise = 3")
            .parse_option_group::<Sample>()
            .expect_err("typo");
        assert_eq!(
            err.to_string(),
            "Invalid or Unsupported Configuration: source 's' (kind k): option 'sise': \
             unknown field `sise`, expected one of `size`, `names`, `tls`, `tls_ca_file`"
        );
        let err = spec("sise = 3")
            .parse_options::<TlsOptions>()
            .expect_err("typo");
        assert!(
            err.to_string()
                .ends_with("option 'sise': unknown field `sise`, expected `tls` or `tls_ca_file`"),
            "{err}"
        );
        let err = spec("size = \"big\"")
            .parse_option_group::<Sample>()
            .expect_err("type");
        assert!(
            err.to_string().ends_with(
                "source 's' (kind k): option 'size': invalid type: string \"big\", expected a positive integer"
            ),
            "{err}"
        );
        let err = spec("size = 0")
            .parse_option_group::<Sample>()
            .expect_err("zero");
        assert!(
            err.to_string()
                .contains("option 'size': invalid value: integer `0`"),
            "{err}"
        );
        let err = spec("names = [1]")
            .parse_option_group::<Sample>()
            .expect_err("list");
        assert!(
            err.to_string()
                .contains("option 'names': invalid type: integer `1`"),
            "{err}"
        );
    }

    #[test]
    fn errors_start_with_the_line_when_known() {
        let mut spec = spec("tls = \"verify-full\"");
        spec.option_lines
            .insert("tls".into(), "conf/koios.toml:7".into());
        let err = spec.parse_option_group::<Sample>().expect_err("no CA");
        assert!(
            err.to_string().contains(
                "conf/koios.toml:7: source.tls: source 's' (kind k): option 'tls': \"verify-full\" needs tls_ca_file"
            ),
            "{err}"
        );
        let err = spec.reject_unknown_options(&["x"]).expect_err("unknown");
        assert!(
            err.to_string().contains(
                "conf/koios.toml:7: source.tls: source 's' (kind k): option 'tls': unknown option; known options: x"
            ),
            "{err}"
        );
    }
}
