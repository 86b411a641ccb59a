//! Changes to a source's tables and schemas that Koios makes on a user's
//! behalf (`CREATE TABLE src.schema.t …`, `ALTER TABLE`, `DROP TABLE`,
//! `TRUNCATE`, `CREATE SCHEMA`): what the engine hands a [`Source`], in
//! terms of no backend.
//!
//! Column types are Koios's own ([`ColumnType`]): richer than Arrow's,
//! because what a user declares (`json`, `uuid`, `varchar(20)`,
//! `timestamptz`) must reach the backend as such, and each backend maps
//! them to its own types in its `ddl.rs`, refusing — before anything is
//! created — a type it cannot hold, naming the column.
//!
//! [`Source`]: crate::Source

use std::fmt;

use datafusion::common::ScalarValue;

/// A table in a source: `schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    pub schema: String,
    pub table: String,
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// A column type a user may declare (kept in Koios's metadata store as
/// part of a logical table's definition, hence serde).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    Boolean,
    /// A signed integer of this many bits (8, 16, 32, 64).
    Int(u8),
    /// An unsigned integer of this many bits (8, 16, 32, 64).
    UInt(u8),
    Real,
    Double,
    /// `numeric(precision, scale)`; `None` for an unconstrained `numeric`.
    Numeric(Option<(u8, i8)>),
    Text,
    Varchar(Option<u64>),
    Char(u64),
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Interval,
    Json,
    Jsonb,
    Uuid,
    Array(Box<ColumnType>),
}

impl fmt::Display for ColumnType {
    /// The type as a PostgreSQL user writes it (in messages).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::Boolean => f.write_str("boolean"),
            ColumnType::Int(8) => f.write_str("tinyint"),
            ColumnType::Int(16) => f.write_str("smallint"),
            ColumnType::Int(32) => f.write_str("integer"),
            ColumnType::Int(_) => f.write_str("bigint"),
            ColumnType::UInt(bits) => write!(f, "uint{}", bits / 8),
            ColumnType::Real => f.write_str("real"),
            ColumnType::Double => f.write_str("double precision"),
            ColumnType::Numeric(None) => f.write_str("numeric"),
            ColumnType::Numeric(Some((p, s))) => write!(f, "numeric({p},{s})"),
            ColumnType::Text => f.write_str("text"),
            ColumnType::Varchar(None) => f.write_str("varchar"),
            ColumnType::Varchar(Some(n)) => write!(f, "varchar({n})"),
            ColumnType::Char(n) => write!(f, "char({n})"),
            ColumnType::Bytea => f.write_str("bytea"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::Time => f.write_str("time"),
            ColumnType::Timestamp => f.write_str("timestamp"),
            ColumnType::TimestampTz => f.write_str("timestamptz"),
            ColumnType::Interval => f.write_str("interval"),
            ColumnType::Json => f.write_str("json"),
            ColumnType::Jsonb => f.write_str("jsonb"),
            ColumnType::Uuid => f.write_str("uuid"),
            ColumnType::Array(element) => write!(f, "{element}[]"),
        }
    }
}

/// One declared column.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDefinition {
    pub name: String,
    pub data_type: ColumnType,
    pub nullable: bool,
    /// A constant default (`DEFAULT 0`, `DEFAULT 'x'`), already of the
    /// column's type where Koios could cast it.
    pub default: Option<ScalarValue>,
}

/// `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq)]
pub struct TableDefinition {
    pub name: TableName,
    pub columns: Vec<ColumnDefinition>,
    /// Column names of the primary key, in key order (empty: none).
    pub primary_key: Vec<String>,
    pub if_not_exists: bool,
}

/// A change to one source's tables or schemas.
#[derive(Debug, Clone, PartialEq)]
pub enum SchemaChange {
    CreateTable(TableDefinition),
    DropTable {
        name: TableName,
        if_exists: bool,
    },
    Truncate(TableName),
    AddColumn {
        table: TableName,
        column: ColumnDefinition,
        if_not_exists: bool,
    },
    DropColumn {
        table: TableName,
        column: String,
        if_exists: bool,
    },
    RenameColumn {
        table: TableName,
        from: String,
        to: String,
    },
    RenameTable {
        table: TableName,
        to: String,
    },
    CreateSchema {
        name: String,
        if_not_exists: bool,
    },
    DropSchema {
        name: String,
        if_exists: bool,
    },
}

impl SchemaChange {
    /// The statement's command tag, as PostgreSQL reports it.
    pub fn tag(&self) -> &'static str {
        match self {
            SchemaChange::CreateTable(_) => "CREATE TABLE",
            SchemaChange::DropTable { .. } => "DROP TABLE",
            SchemaChange::Truncate(_) => "TRUNCATE TABLE",
            SchemaChange::AddColumn { .. }
            | SchemaChange::DropColumn { .. }
            | SchemaChange::RenameColumn { .. }
            | SchemaChange::RenameTable { .. } => "ALTER TABLE",
            SchemaChange::CreateSchema { .. } => "CREATE SCHEMA",
            SchemaChange::DropSchema { .. } => "DROP SCHEMA",
        }
    }

    /// The schema whose tables change (`None`: the list of schemas does).
    pub fn schema(&self) -> Option<&str> {
        match self {
            SchemaChange::CreateTable(t) => Some(&t.name.schema),
            SchemaChange::DropTable { name, .. } | SchemaChange::Truncate(name) => {
                Some(&name.schema)
            }
            SchemaChange::AddColumn { table, .. }
            | SchemaChange::DropColumn { table, .. }
            | SchemaChange::RenameColumn { table, .. }
            | SchemaChange::RenameTable { table, .. } => Some(&table.schema),
            SchemaChange::CreateSchema { .. } | SchemaChange::DropSchema { .. } => None,
        }
    }
}
