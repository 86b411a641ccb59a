//! Creating and dropping collections through Koios. MongoDB has no table
//! definitions, so `CREATE TABLE` records the declared columns on the
//! collection itself, as a `$jsonSchema` validator: each column a property
//! whose `bsonType` MongoDB enforces (`null` allowed unless `NOT NULL`) and
//! whose `description` is the column's type in the words of the
//! `[source.schema]` option. A collection with such a validator is opened
//! with those columns (no sampling); its order is the declared order. A
//! primary key other than `_id` becomes a unique index.
//!
//! `ALTER TABLE` changes the recorded columns and the documents: `ADD
//! COLUMN` (a declared collection; `NOT NULL` only while it is empty),
//! `DROP COLUMN` (`$unset` in every document), `RENAME COLUMN` (`$rename`
//! in every document), `RENAME TO` (`renameCollection`). `_id` stays.
//!
//! Declared types: `boolean`; `smallint`/`integer` as int; `bigint` as
//! long; `real`/`double precision` as double; `numeric(p,s)` (p ≤ 34) as
//! decimal; text types and `uuid` as string; `bytea` as binData;
//! `timestamp`/`timestamptz` as date (milliseconds); `json` as any value
//! (read back as text); arrays of these. Others are refused, naming the
//! column.

use datafusion::error::Result;
use futures::TryStreamExt;
use koios_connector::ddl::{
    ColumnDefinition, ColumnType, SchemaChange, TableDefinition, TableName,
};
use koios_connector::sql_err;
use koios_connector::sqlstate::codes;
use mongodb::IndexModel;
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::IndexOptions;

use crate::discovery::MongoDiscovery;
use crate::types::schema::Shape;

/// The `bsonType` MongoDB checks and the `[source.schema]` type Koios reads
/// back, for a declared type.
fn mongo_type(
    ty: &ColumnType,
) -> std::result::Result<(Option<&'static str>, String), &'static str> {
    Ok(match ty {
        ColumnType::Boolean => (Some("bool"), "bool".into()),
        ColumnType::Int(8 | 16 | 32) | ColumnType::UInt(8 | 16) => (Some("int"), "int".into()),
        ColumnType::Int(_) | ColumnType::UInt(32) => (Some("long"), "bigint".into()),
        ColumnType::UInt(_) => return Err("MongoDB's integers end at int64"),
        ColumnType::Real | ColumnType::Double => (Some("double"), "double".into()),
        ColumnType::Numeric(Some((p, s))) if *p <= 34 && *s >= 0 => {
            (Some("decimal"), format!("decimal({p},{s})"))
        }
        ColumnType::Numeric(_) => {
            return Err("MongoDB's decimal128 holds 34 digits: declare numeric(p,s) with p ≤ 34");
        }
        ColumnType::Text | ColumnType::Varchar(_) | ColumnType::Char(_) | ColumnType::Uuid => {
            (Some("string"), "text".into())
        }
        ColumnType::Bytea => (Some("binData"), "bytea".into()),
        ColumnType::Timestamp | ColumnType::TimestampTz => (Some("date"), "timestamp".into()),
        ColumnType::Json | ColumnType::Jsonb => (None, "json".into()),
        ColumnType::Array(element) => {
            let (_, inner) = mongo_type(element)?;
            (Some("array"), format!("array<{inner}>"))
        }
        ColumnType::Date => return Err("MongoDB has no date type: declare timestamp"),
        ColumnType::Time | ColumnType::Interval => return Err("MongoDB has no such type"),
    })
}

/// The type MongoDB keeps a column declared `ty` as when a table is made
/// from another backend's columns: the nearest it has where it lacks
/// `ty` (a date as a timestamp at midnight UTC, a time or an interval as
/// text, an unsigned 64-bit integer or a wider numeric as decimal128).
pub fn storable_type(ty: &ColumnType) -> ColumnType {
    match ty {
        ColumnType::Date => ColumnType::Timestamp,
        ColumnType::Time | ColumnType::Interval => ColumnType::Text,
        ColumnType::UInt(64) => ColumnType::Numeric(Some((20, 0))),
        ColumnType::Numeric(Some((p, s))) if *p <= 34 && *s >= 0 => ty.clone(),
        ColumnType::Numeric(Some((_, s))) if *s >= 0 => {
            ColumnType::Numeric(Some((34, (*s).min(34))))
        }
        ColumnType::Numeric(_) => ColumnType::Numeric(Some((34, 10))),
        ColumnType::Array(element) => ColumnType::Array(Box::new(storable_type(element))),
        other => other.clone(),
    }
}

/// The `$jsonSchema` validator recording `definition`'s columns.
fn validator(source: &str, definition: &TableDefinition) -> Result<Document> {
    let mut properties = Document::new();
    let mut required = Vec::new();
    for column in &definition.columns {
        properties.insert(column.name.clone(), property(source, column)?);
        if !column.nullable {
            required.push(Bson::String(column.name.clone()));
        }
    }
    let mut schema = doc! {
        "bsonType": "object",
        "description": "columns declared through Koios",
        "properties": properties,
    };
    if !required.is_empty() {
        schema.insert("required", required);
    }
    Ok(doc! { "$jsonSchema": schema })
}

fn property(source: &str, column: &ColumnDefinition) -> Result<Document> {
    let (bson_type, declared) = mongo_type(&column.data_type).map_err(|why| {
        koios_connector::sql_error!(
            codes::FEATURE_NOT_SUPPORTED,
            "source '{source}' cannot create column \"{}\" of type {}: {why}",
            column.name,
            column.data_type
        )
    })?;
    if column.default.is_some() {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "source '{source}': column \"{}\": MongoDB has no column defaults",
            column.name
        );
    }
    let mut property = doc! { "description": declared };
    if let Some(bson_type) = bson_type {
        let types: Vec<Bson> = if column.nullable {
            vec![bson_type.into(), "null".into()]
        } else {
            vec![bson_type.into()]
        };
        property.insert("bsonType", types);
    }
    Ok(property)
}

/// The columns a Koios-made validator declares, in order; `None` when the
/// collection has no such validator.
pub(crate) fn declared_columns(validator: Option<&Document>) -> Option<Vec<(String, Shape)>> {
    let schema = validator?.get_document("$jsonSchema").ok()?;
    if schema.get_str("description").ok()? != "columns declared through Koios" {
        return None;
    }
    schema
        .get_document("properties")
        .ok()?
        .iter()
        .map(|(name, property)| {
            let declared = property.as_document()?.get_str("description").ok()?;
            Some((name.clone(), Shape::parse_type(declared).ok()?))
        })
        .collect()
}

impl MongoDiscovery {
    /// Makes `change` in the deployment.
    pub(crate) async fn run_ddl(&self, change: &SchemaChange) -> Result<()> {
        match change {
            SchemaChange::CreateTable(definition) => self.create_collection(definition).await,
            SchemaChange::DropTable { name, if_exists } => {
                if !self.collection_exists(&name.schema, &name.table).await? {
                    if *if_exists {
                        return Ok(());
                    }
                    return sql_err!(
                        codes::UNDEFINED_TABLE,
                        "source '{}': collection {name} does not exist",
                        self.source
                    );
                }
                self.collection::<Document>(&name.schema, &name.table)
                    .drop()
                    .await
                    .map_err(|e| self.error(&format!("dropping {name}"), &e))
            }
            SchemaChange::Truncate(name) => self
                .collection::<Document>(&name.schema, &name.table)
                .delete_many(doc! {})
                .await
                .map(drop)
                .map_err(|e| self.error(&format!("truncating {name}"), &e)),
            SchemaChange::RenameTable { table, to } => {
                let command = doc! {
                    "renameCollection": format!("{}.{}", table.schema, table.table),
                    "to": format!("{}.{to}", table.schema),
                };
                self.client
                    .database("admin")
                    .run_command(command)
                    .await
                    .map(drop)
                    .map_err(|e| self.error(&format!("renaming {table}"), &e))
            }
            SchemaChange::AddColumn {
                table,
                column,
                if_not_exists,
            } => self.add_column(table, column, *if_not_exists).await,
            SchemaChange::DropColumn {
                table,
                column,
                if_exists,
            } => self.drop_column(table, column, *if_exists).await,
            SchemaChange::RenameColumn { table, from, to } => {
                self.rename_column(table, from, to).await
            }
            other => sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "source '{}': {} is not supported on MongoDB collections",
                self.source,
                other.tag()
            ),
        }
    }

    /// The collection's `$jsonSchema` when Koios declared its columns;
    /// `None` when they are sampled.
    async fn declared_schema(&self, name: &TableName) -> Result<Option<Document>> {
        let context = format!("reading the definition of {name}");
        let specification = self
            .client
            .database(&name.schema)
            .list_collections()
            .filter(doc! { "name": &name.table })
            .await
            .map_err(|e| self.error(&context, &e))?
            .try_next()
            .await
            .map_err(|e| self.error(&context, &e))?;
        let Some(specification) = specification else {
            return sql_err!(
                codes::UNDEFINED_TABLE,
                "source '{}': collection {name} does not exist",
                self.source
            );
        };
        let validator = specification.options.validator;
        if declared_columns(validator.as_ref()).is_none() {
            return Ok(None);
        }
        Ok(validator.and_then(|v| v.get_document("$jsonSchema").ok().cloned()))
    }

    /// Records `schema` as the collection's columns; `strict` false lets
    /// documents that do not match yet be changed (a rename in progress).
    async fn set_schema(&self, name: &TableName, schema: Document, strict: bool) -> Result<()> {
        let command = doc! {
            "collMod": &name.table,
            "validator": { "$jsonSchema": schema },
            "validationLevel": if strict { "strict" } else { "off" },
        };
        self.client
            .database(&name.schema)
            .run_command(command)
            .await
            .map(drop)
            .map_err(|e| self.error(&format!("changing the columns of {name}"), &e))
    }

    /// `ALTER TABLE … ADD COLUMN`: recorded in the validator; documents
    /// already there lack the field (NULL), so `NOT NULL` needs an empty
    /// collection, as in PostgreSQL without a default.
    async fn add_column(
        &self,
        table: &TableName,
        column: &ColumnDefinition,
        if_not_exists: bool,
    ) -> Result<()> {
        let Some(mut schema) = self.declared_schema(table).await? else {
            return sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "source '{}': the columns of {table} are sampled from its documents, not declared: a field appears when documents have it (ADD COLUMN needs a collection made by CREATE TABLE through Koios)",
                self.source
            );
        };
        let property = property(&self.source, column)?;
        let mut properties = schema
            .get_document("properties")
            .cloned()
            .unwrap_or_default();
        if properties.contains_key(&column.name) {
            if if_not_exists {
                return Ok(());
            }
            return sql_err!(
                codes::DUPLICATE_COLUMN,
                "source '{}': column \"{}\" of {table} already exists",
                self.source,
                column.name
            );
        }
        if !column.nullable {
            let documents = self
                .collection::<Document>(&table.schema, &table.table)
                .count_documents(doc! {})
                .limit(1)
                .await
                .map_err(|e| self.error(&format!("counting {table}"), &e))?;
            if documents > 0 {
                return sql_err!(
                    codes::NOT_NULL_VIOLATION,
                    "source '{}': column \"{}\" of {table} contains null values (its documents lack it): add it without NOT NULL",
                    self.source,
                    column.name
                );
            }
            let mut required = required_of(&schema);
            required.push(column.name.clone());
            schema.insert("required", required);
        }
        properties.insert(column.name.clone(), property);
        schema.insert("properties", properties);
        self.set_schema(table, schema, true).await
    }

    /// `ALTER TABLE … DROP COLUMN`: the field removed from every document
    /// (and from the validator, first, so no document is refused).
    async fn drop_column(&self, table: &TableName, column: &str, if_exists: bool) -> Result<()> {
        if column == "_id" {
            return sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "source '{}': _id is every document's key and cannot be dropped",
                self.source
            );
        }
        if let Some(mut schema) = self.declared_schema(table).await? {
            let mut properties = schema
                .get_document("properties")
                .cloned()
                .unwrap_or_default();
            if properties.remove(column).is_none() {
                if if_exists {
                    return Ok(());
                }
                return sql_err!(
                    codes::UNDEFINED_COLUMN,
                    "source '{}': column \"{column}\" of {table} does not exist",
                    self.source
                );
            }
            let required: Vec<String> = required_of(&schema)
                .into_iter()
                .filter(|name| name != column)
                .collect();
            schema.insert("properties", properties);
            set_required(&mut schema, required);
            self.set_schema(table, schema, true).await?;
        }
        self.collection::<Document>(&table.schema, &table.table)
            .update_many(
                doc! { column: { "$exists": true } },
                doc! { "$unset": { column: "" } },
            )
            .await
            .map(drop)
            .map_err(|e| self.error(&format!("dropping column \"{column}\" of {table}"), &e))
    }

    /// `ALTER TABLE … RENAME COLUMN`: every document's field renamed, and
    /// the validator's property (keeping its place), validation held off
    /// while documents still carry the old name.
    async fn rename_column(&self, table: &TableName, from: &str, to: &str) -> Result<()> {
        if from == "_id" || to == "_id" {
            return sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "source '{}': _id is every document's key and cannot be renamed",
                self.source
            );
        }
        let declared = self.declared_schema(table).await?;
        let properties = declared
            .as_ref()
            .and_then(|schema| schema.get_document("properties").ok().cloned())
            .unwrap_or_default();
        // Renamed in the validator but not yet in every document (a rename
        // that stopped half-way): carry on with the documents.
        let resumed = !properties.contains_key(from) && properties.contains_key(to);
        if let Some(mut schema) = declared.clone().filter(|_| !resumed) {
            if !properties.contains_key(from) {
                return sql_err!(
                    codes::UNDEFINED_COLUMN,
                    "source '{}': column \"{from}\" of {table} does not exist",
                    self.source
                );
            }
            if properties.contains_key(to) {
                return sql_err!(
                    codes::DUPLICATE_COLUMN,
                    "source '{}': column \"{to}\" of {table} already exists",
                    self.source
                );
            }
            let renamed: Document = properties
                .into_iter()
                .map(|(name, property)| {
                    (if name == from { to.to_string() } else { name }, property)
                })
                .collect();
            let required = required_of(&schema)
                .into_iter()
                .map(|name| if name == from { to.to_string() } else { name })
                .collect();
            schema.insert("properties", renamed);
            set_required(&mut schema, required);
            self.set_schema(table, schema, false).await?;
        }
        self.collection::<Document>(&table.schema, &table.table)
            .update_many(
                doc! { from: { "$exists": true } },
                doc! { "$rename": { from: to } },
            )
            .await
            .map_err(|e| self.error(&format!("renaming column \"{from}\" of {table}"), &e))?;
        match self.declared_schema(table).await? {
            Some(schema) if declared.is_some() => self.set_schema(table, schema, true).await,
            _ => Ok(()),
        }
    }

    async fn create_collection(&self, definition: &TableDefinition) -> Result<()> {
        let name = &definition.name;
        // Checked before anything is created: a refused type changes nothing.
        let validator = validator(&self.source, definition)?;
        if self.collection_exists(&name.schema, &name.table).await? {
            if definition.if_not_exists {
                return Ok(());
            }
            return sql_err!(
                codes::DUPLICATE_TABLE,
                "source '{}': collection {name} already exists",
                self.source
            );
        }
        let database = self.client.database(&name.schema);
        database
            .create_collection(&name.table)
            .validator(validator)
            .await
            .map_err(|e| self.error(&format!("creating {name}"), &e))?;
        if !definition.primary_key.is_empty() && definition.primary_key != ["_id"] {
            let mut keys = Document::new();
            for key in &definition.primary_key {
                keys.insert(key.clone(), 1);
            }
            let index = IndexModel::builder()
                .keys(keys)
                .options(IndexOptions::builder().unique(true).build())
                .build();
            if let Err(e) = self
                .collection::<Document>(&name.schema, &name.table)
                .create_index(index)
                .await
            {
                // Leave nothing behind.
                let _ = database.collection::<Document>(&name.table).drop().await;
                return Err(self.error(&format!("creating the key of {name}"), &e));
            }
        }
        Ok(())
    }
}

/// The columns a `$jsonSchema` requires.
fn required_of(schema: &Document) -> Vec<String> {
    schema
        .get_array("required")
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Sets (or, when empty, removes: MongoDB refuses an empty list) the
/// columns a `$jsonSchema` requires.
fn set_required(schema: &mut Document, required: Vec<String>) {
    if required.is_empty() {
        schema.remove("required");
    } else {
        schema.insert("required", required);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_columns_round_trip_through_the_validator() {
        let column = |name: &str, data_type: ColumnType, nullable: bool| ColumnDefinition {
            name: name.into(),
            data_type,
            nullable,
            default: None,
        };
        let definition = TableDefinition {
            name: TableName {
                schema: "db".into(),
                table: "t".into(),
            },
            columns: vec![
                column("_id", ColumnType::Int(64), false),
                column("amount", ColumnType::Numeric(Some((12, 2))), true),
                column("tags", ColumnType::Array(Box::new(ColumnType::Text)), true),
                column("doc", ColumnType::Json, true),
            ],
            primary_key: vec!["_id".into()],
            if_not_exists: false,
        };
        let validator = validator("m", &definition).expect("maps");
        let columns = declared_columns(Some(&validator)).expect("declared");
        assert_eq!(
            columns,
            vec![
                ("_id".to_string(), Shape::Int64),
                ("amount".to_string(), Shape::Decimal(2)),
                ("tags".to_string(), Shape::Array(Box::new(Shape::String))),
                ("doc".to_string(), Shape::Text),
            ]
        );
        assert!(mongo_type(&ColumnType::UInt(64)).is_err());
    }
}
