//! What a logical table is: its declared columns, its layout and its
//! members — kept as JSON in the metadata store (serde, unknown fields
//! refused, so a store written by a newer Koios is not misread).

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, IntervalUnit, Schema, SchemaRef, TimeUnit};
use datafusion::error::{DataFusionError, Result};
use koios_connector::ddl::{ColumnDefinition, ColumnType, TableDefinition, TableName};
use serde::{Deserialize, Serialize};

pub use super::placement::Placement;
use crate::engine::catalog::KOIOS_CATALOG;

/// Virtual buckets of hash striping: a key hashes to a bucket, a bucket
/// belongs to a group of members (`bucket % groups` until members are
/// added or dropped, then the table's own map of bucket owners). A fixed
/// bucket count keeps a key's bucket stable whatever happens to the
/// members, so rebalancing moves whole buckets and only the rows in them.
pub const HASH_BUCKETS: u32 = 4096;

/// Rows a round-robin table puts on one member before moving to the next.
pub const ROUND_ROBIN_BATCH_ROWS: u64 = 1000;

/// A logical table as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogicalTableDef {
    /// Its schema in the `koios` catalog.
    pub schema: String,
    pub table: String,
    pub columns: Vec<LogicalColumn>,
    /// Column names of the primary key (empty: none).
    pub primary_key: Vec<String>,
    pub layout: Layout,
    /// The member tables, in the order given (a member's index is its
    /// place in placement).
    pub members: Vec<MemberName>,
    /// Hash striping: the group owning each bucket, once members were
    /// added or dropped (absent: bucket `b` in group `b % groups`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owners: Option<Vec<u32>>,
    /// A change of members under way (`ALTER TABLE … ADD|DROP|MOVE
    /// MEMBER`): reads and writes keep the placement above until the
    /// moved rows are copied and verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<Rebalance>,
    /// Members that may still hold rows of buckets they gave away (deleted
    /// in the background after a rebalance): reads of them keep only the
    /// rows of buckets they own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leftovers: Vec<MemberName>,
}

/// The members and bucket owners a hash-striped table is moving to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rebalance {
    pub members: Vec<MemberName>,
    /// The group of each bucket among `members`.
    pub owners: Vec<u32>,
    /// The job moving the rows.
    pub job: i64,
}

/// A declared column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogicalColumn {
    pub name: String,
    pub data_type: ColumnType,
    pub nullable: bool,
}

/// How rows are spread over the members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Layout {
    /// Each row on the member owning the bucket of its key's hash — or,
    /// with `copies`, on each member of the group owning it.
    StripedHash {
        key: String,
        buckets: u32,
        /// Rows kept on several members (absent: one copy of each row).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        copies: Option<Replication>,
    },
    /// Batches of `batch_rows` rows on each member in turn.
    StripedRoundRobin { batch_rows: u64 },
    /// Every row on every member (each member a *copy*); a write succeeds
    /// when `write_quorum` copies applied it; reads go to one copy.
    Mirrored {
        write_quorum: usize,
        read: ReadChoice,
    },
}

/// `STRIPED BY HASH … WITH (copies = k)`: the members taken `k` at a time
/// form groups (members `0..k`, `k..2k`, …), each group holding its
/// buckets' rows on every one of its members — striped mirrors, as RAID 10
/// stripes over mirrored pairs. Within a group, the rules of a mirrored
/// table apply: writes to every member, `write_quorum` of them to succeed,
/// reads from one current member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replication {
    pub copies: usize,
    pub write_quorum: usize,
    pub read: ReadChoice,
}

/// Which copy of a mirrored table a query reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadChoice {
    /// The copy whose source answered its last health check fastest.
    Fastest,
    /// The first copy listed that is up.
    First,
}

impl ReadChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadChoice::Fastest => "fastest",
            ReadChoice::First => "first",
        }
    }
}

impl Layout {
    /// `hash` / `round robin` / `mirrored`, as `koios.system.logical_tables`
    /// shows it.
    pub fn placement(&self) -> &'static str {
        match self {
            Layout::StripedHash { .. } => "hash",
            Layout::StripedRoundRobin { .. } => "round robin",
            Layout::Mirrored { .. } => "mirrored",
        }
    }

    /// `striped` / `mirrored`: what messages call the table.
    pub fn kind(&self) -> &'static str {
        match self {
            Layout::StripedHash { .. } | Layout::StripedRoundRobin { .. } => "striped",
            Layout::Mirrored { .. } => "mirrored",
        }
    }

    /// Whether each row is on every member.
    pub fn is_mirrored(&self) -> bool {
        matches!(self, Layout::Mirrored { .. })
    }

    /// Whether rows are kept on several members by the write rules of
    /// mirrored tables (journal, quorum, catch-up): a mirrored table, or a
    /// striped one `WITH (copies = k)`.
    pub fn has_copies(&self) -> bool {
        matches!(
            self,
            Layout::Mirrored { .. }
                | Layout::StripedHash {
                    copies: Some(_),
                    ..
                }
        )
    }

    /// How many copies must apply a write, for a table with copies.
    pub fn write_quorum(&self) -> Option<usize> {
        match self {
            Layout::Mirrored { write_quorum, .. } => Some(*write_quorum),
            Layout::StripedHash {
                copies: Some(r), ..
            } => Some(r.write_quorum),
            _ => None,
        }
    }

    /// Which copy reads go to, for a table with copies.
    pub fn read_choice(&self) -> Option<ReadChoice> {
        match self {
            Layout::Mirrored { read, .. } => Some(*read),
            Layout::StripedHash {
                copies: Some(r), ..
            } => Some(r.read),
            _ => None,
        }
    }

    /// The striping key, for hash striping.
    pub fn key(&self) -> Option<&str> {
        match self {
            Layout::StripedHash { key, .. } => Some(key),
            Layout::StripedRoundRobin { .. } | Layout::Mirrored { .. } => None,
        }
    }
}

/// A member table: `source.schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberName {
    pub source: String,
    pub schema: String,
    pub table: String,
}

impl MemberName {
    pub fn table_name(&self) -> TableName {
        TableName {
            schema: self.schema.clone(),
            table: self.table.clone(),
        }
    }
}

impl fmt::Display for MemberName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.source, self.schema, self.table)
    }
}

impl LogicalTableDef {
    /// The key of the metadata store and of the engine's map: `schema.table`.
    pub fn key(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// How many members hold each row: every member of a mirrored table,
    /// `copies` of a striped one.
    pub fn copies(&self) -> usize {
        let members = self.members.len().max(1);
        match &self.layout {
            Layout::Mirrored { .. } => members,
            Layout::StripedHash {
                copies: Some(r), ..
            } => r.copies.clamp(1, members),
            _ => 1,
        }
    }

    /// The groups of members holding the same rows: one per member of a
    /// striped table without copies, one for a mirrored table, `members /
    /// copies` for striped mirrors. Hash striping places a row in a group.
    pub fn groups(&self) -> usize {
        (self.members.len() / self.copies()).max(1)
    }

    /// The group member `member` belongs to.
    pub fn group_of(&self, member: usize) -> usize {
        member / self.copies()
    }

    /// The members of group `group`.
    pub fn group_members(&self, group: usize) -> std::ops::Range<usize> {
        let copies = self.copies();
        let start = group * copies;
        start..(start + copies).min(self.members.len())
    }

    /// Where hash striping puts each bucket.
    pub fn placement(&self) -> Placement {
        let buckets = match &self.layout {
            Layout::StripedHash { buckets, .. } => *buckets,
            _ => HASH_BUCKETS,
        };
        Placement {
            buckets,
            groups: self.groups(),
            owners: self.owners.as_deref().map(Arc::from),
        }
    }

    /// The placement after the rebalance under way, with its members.
    pub fn placement_after(&self) -> Option<(Placement, &[MemberName])> {
        let rebalance = self.rebalance.as_ref()?;
        let mut after = self.clone();
        after.members = rebalance.members.clone();
        let mut placement = after.placement();
        placement.owners = Some(Arc::from(rebalance.owners.as_slice()));
        Some((placement, &rebalance.members))
    }

    /// Members that may hold rows of buckets they do not own now: rows a
    /// rebalance is copying to them, or rows it moved away and has not
    /// deleted yet. Reads of them keep only their own rows.
    pub fn holding_foreign_rows(&self) -> Vec<usize> {
        let mut holding: Vec<usize> = self
            .leftovers
            .iter()
            .filter_map(|m| self.members.iter().position(|x| x == m))
            .collect();
        if let Some((after, after_members)) = self.placement_after() {
            let before = self.placement();
            for bucket in 0..before.buckets {
                let to = after_members.get(after.group(bucket));
                if to == self.members.get(before.group(bucket)) {
                    continue;
                }
                if let Some(index) = to.and_then(|m| self.members.iter().position(|x| x == m))
                    && !holding.contains(&index)
                {
                    holding.push(index);
                }
            }
        }
        holding
    }

    /// `koios.schema.table`.
    pub fn display_name(&self) -> String {
        format!("{KOIOS_CATALOG}.{}.{}", self.schema, self.table)
    }

    /// `striped table koios.schema.table` / `mirrored table …`: how
    /// messages name it.
    pub fn described(&self) -> String {
        format!("{} table {}", self.layout.kind(), self.display_name())
    }

    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self)
            .map_err(|e| DataFusionError::Internal(format!("logical table definition: {e}")))
    }

    pub fn from_json(text: &str) -> Result<LogicalTableDef> {
        serde_json::from_str(text).map_err(|e| {
            DataFusionError::Execution(format!(
                "a logical table's definition Koios cannot read: {e}"
            ))
        })
    }

    /// The `CREATE TABLE` of member `member` with the declared columns.
    pub fn member_definition(&self, member: &MemberName) -> TableDefinition {
        TableDefinition {
            name: member.table_name(),
            columns: self
                .columns
                .iter()
                .map(|c| ColumnDefinition {
                    name: c.name.clone(),
                    data_type: c.data_type.clone(),
                    nullable: c.nullable,
                    default: None,
                })
                .collect(),
            primary_key: self.primary_key.clone(),
            if_not_exists: false,
        }
    }

    /// The declared columns as Arrow types, as Koios's own tables type them.
    pub fn arrow_schema(&self) -> Result<SchemaRef> {
        let fields = self
            .columns
            .iter()
            .map(|c| {
                Ok(Field::new(
                    &c.name,
                    declared_arrow_type(&c.data_type)?,
                    true,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Schema::new(fields)))
    }
}

/// The Arrow type a declared column has in Koios (DataFusion's mapping of
/// the SQL type).
pub fn declared_arrow_type(ty: &ColumnType) -> Result<DataType> {
    Ok(match ty {
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::Int(8) => DataType::Int8,
        ColumnType::Int(16) => DataType::Int16,
        ColumnType::Int(32) => DataType::Int32,
        ColumnType::Int(_) => DataType::Int64,
        ColumnType::UInt(8) => DataType::UInt8,
        ColumnType::UInt(16) => DataType::UInt16,
        ColumnType::UInt(32) => DataType::UInt32,
        ColumnType::UInt(_) => DataType::UInt64,
        ColumnType::Real => DataType::Float32,
        ColumnType::Double => DataType::Float64,
        ColumnType::Numeric(Some((p, s))) => DataType::Decimal128(*p, *s),
        ColumnType::Numeric(None) => DataType::Decimal128(38, 10),
        ColumnType::Text
        | ColumnType::Varchar(_)
        | ColumnType::Char(_)
        | ColumnType::Json
        | ColumnType::Jsonb
        | ColumnType::Uuid => DataType::Utf8,
        ColumnType::Bytea => DataType::Binary,
        ColumnType::Date => DataType::Date32,
        ColumnType::Time => DataType::Time64(TimeUnit::Microsecond),
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        ColumnType::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ColumnType::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
        ColumnType::Array(element) => DataType::List(Arc::new(Field::new(
            "item",
            declared_arrow_type(element)?,
            true,
        ))),
    })
}

/// Whether a member's column of type `member` can stand for a declared
/// column of type `declared`: the same kind of value (numbers, text, times,
/// bytes, booleans), so reading it as the declared type is a cast.
pub fn compatible(member: &DataType, declared: &DataType) -> bool {
    fn family(t: &DataType) -> u8 {
        match t {
            DataType::Boolean => 1,
            t if t.is_integer() => 2,
            t if t.is_floating() => 3,
            DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..) => 4,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => 5,
            DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_) => 6,
            DataType::Date32 | DataType::Date64 => 7,
            DataType::Time32(_) | DataType::Time64(_) => 8,
            DataType::Timestamp(..) => 9,
            DataType::Interval(_) | DataType::Duration(_) => 10,
            DataType::List(_) | DataType::LargeList(_) => 11,
            DataType::Dictionary(_, value) => family(value),
            _ => 0,
        }
    }
    let (m, d) = (family(member), family(declared));
    // Integers may stand for exact numerics and the other way round when
    // the declared numeric has no fraction (MongoDB keeps bigint as int64).
    m != 0 && (m == d || (m == 2 && d == 4) || (m == 4 && d == 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_round_trip_through_json() {
        let def = LogicalTableDef {
            schema: "public".into(),
            table: "events".into(),
            columns: vec![LogicalColumn {
                name: "id".into(),
                data_type: ColumnType::Numeric(Some((12, 2))),
                nullable: false,
            }],
            primary_key: vec!["id".into()],
            layout: Layout::StripedHash {
                key: "id".into(),
                buckets: HASH_BUCKETS,
                copies: None,
            },
            members: vec![MemberName {
                source: "pg".into(),
                schema: "public".into(),
                table: "events".into(),
            }],
            owners: None,
            rebalance: None,
            leftovers: Vec::new(),
        };
        let json = def.to_json().expect("serializes");
        assert_eq!(LogicalTableDef::from_json(&json).expect("reads"), def);
        assert!(LogicalTableDef::from_json(&json.replace("\"members\"", "\"memberz\"")).is_err());
        // A table without copies is stored as before copies existed.
        assert!(!json.contains("copies"));
        let mut mirrors = def.clone();
        mirrors.layout = Layout::StripedHash {
            key: "id".into(),
            buckets: HASH_BUCKETS,
            copies: Some(Replication {
                copies: 2,
                write_quorum: 1,
                read: ReadChoice::First,
            }),
        };
        mirrors.members = (0..4)
            .map(|i| MemberName {
                source: format!("s{i}"),
                schema: "public".into(),
                table: "events".into(),
            })
            .collect();
        let json = mirrors.to_json().expect("serializes");
        assert_eq!(LogicalTableDef::from_json(&json).expect("reads"), mirrors);
        assert_eq!((mirrors.copies(), mirrors.groups()), (2, 2));
        assert_eq!(mirrors.group_members(1), 2..4);
        assert_eq!(mirrors.group_of(3), 1);
    }

    #[test]
    fn member_types_must_be_of_the_declared_kind() {
        assert!(compatible(&DataType::Int32, &DataType::Int64));
        assert!(compatible(&DataType::Utf8View, &DataType::Utf8));
        assert!(!compatible(&DataType::Utf8, &DataType::Int64));
        assert!(!compatible(
            &DataType::Float64,
            &DataType::Decimal128(12, 2)
        ));
    }
}
