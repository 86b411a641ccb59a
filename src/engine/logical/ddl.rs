//! Creating and dropping logical tables.
//!
//! `CREATE TABLE … STRIPED` reads the declared columns with the same code
//! as DDL into a source (so a type is accepted or refused alike), checks
//! every member — an existing one must have every declared column with a
//! value of the same kind, a missing one is created in its backend with
//! the declared columns — then writes the definition to the metadata store
//! and only then serves the table. If anything fails, the members this
//! statement created are dropped again. `DROP TABLE` removes the
//! definition and leaves the members' data, unless `CASCADE`.

use std::sync::Arc;

use datafusion::catalog::CatalogProviderList;

use datafusion::error::Result;
use datafusion::sql::sqlparser::ast::{self, ObjectName, ObjectType, Statement as SqlStatement};
use koios_connector::ddl::SchemaChange;
use koios_connector::{sql_err, sql_error};

use super::definition::{
    HASH_BUCKETS, LogicalColumn, LogicalTableDef, MemberName, ROUND_ROBIN_BATCH_ROWS, ReadChoice,
    Replication, compatible,
};
use super::members::MemberChange;
use super::statement::{LogicalStatement, Striping};
use super::{Layout, LogicalTable, TableOrigin};
use crate::engine::Engine;
use crate::engine::catalog::{DEFAULT_SCHEMA, KOIOS_CATALOG};
use crate::engine::error::codes;
use crate::engine::metadata::StoredLogicalTable;
use crate::engine::remote_ddl::statement::qualify;
use crate::engine::remote_ddl::{Names, RemoteDdl, parse_ddl};

/// `statement` as a statement about logical tables, if it names one:
/// `DROP TABLE` becomes [`LogicalStatement::Drop`]; what Koios does not do
/// to a logical table yet is refused with 0A000.
pub fn logical_ddl(
    statement: &SqlStatement,
    names: &Names,
    engine: &Engine,
) -> Result<Option<LogicalStatement>> {
    let logical = |name: &ObjectName| -> Result<Option<(String, String)>> {
        let (catalog, schema, table) = qualify(names, name)?;
        Ok(
            (catalog == KOIOS_CATALOG && engine.logical_table(&schema, &table).is_some())
                .then_some((schema, table)),
        )
    };
    match statement {
        SqlStatement::Drop {
            object_type: ObjectType::Table,
            if_exists,
            names: dropped,
            cascade,
            ..
        } => {
            let found = dropped.iter().map(&logical).collect::<Result<Vec<_>>>()?;
            if found.iter().all(Option::is_none) {
                return Ok(None);
            }
            if found.iter().any(Option::is_none) {
                return sql_err!(
                    codes::FEATURE_NOT_SUPPORTED,
                    "drop logical tables in a DROP TABLE of their own"
                );
            }
            Ok(Some(LogicalStatement::Drop {
                tables: found.into_iter().flatten().collect(),
                if_exists: *if_exists,
                cascade: *cascade,
            }))
        }
        SqlStatement::Truncate(truncate) => {
            for target in &truncate.table_names {
                if let Some((schema, table)) = logical(&target.name)? {
                    return sql_err!(
                        codes::FEATURE_NOT_SUPPORTED,
                        "TRUNCATE of the striped table {KOIOS_CATALOG}.{schema}.{table} is not supported yet: DELETE FROM it, or TRUNCATE each member"
                    );
                }
            }
            Ok(None)
        }
        SqlStatement::AlterTable(alter) => match logical(&alter.name)? {
            Some((schema, table)) => sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "ALTER TABLE of the striped table {KOIOS_CATALOG}.{schema}.{table} is not supported yet"
            ),
            None => Ok(None),
        },
        _ => Ok(None),
    }
}

/// A statement about logical tables with its names resolved (what
/// [`Engine::run_logical`] carries out).
#[derive(Debug)]
pub enum LogicalWork {
    Create {
        definition: LogicalTableDef,
        if_not_exists: bool,
    },
    Drop {
        tables: Vec<(String, String)>,
        if_exists: bool,
        cascade: bool,
    },
    /// `VERIFY TABLE` / `REPAIR TABLE` (see [`super::verify`]).
    Check {
        schema: String,
        table: String,
        repair: bool,
    },
    /// `ALTER TABLE … ADD|DROP MIRROR` (`mirror`, see [`super::alter`]),
    /// `ADD|DROP|MOVE MEMBER` (see [`super::members`]).
    AlterMembers {
        schema: String,
        table: String,
        change: MemberChange<MemberName>,
        mirror: bool,
        wait: bool,
    },
}

/// Resolves the names of `statement` and checks what needs no source.
pub fn prepare_logical(
    statement: &LogicalStatement,
    names: &Names<'_>,
    is_source: &dyn Fn(&str) -> bool,
) -> Result<LogicalWork> {
    match statement {
        LogicalStatement::CreateStriped {
            create,
            striping,
            members,
        } => Ok(LogicalWork::Create {
            definition: striped_definition(create, striping, members, names, is_source)?,
            if_not_exists: create.if_not_exists,
        }),
        LogicalStatement::Drop {
            tables,
            if_exists,
            cascade,
        } => Ok(LogicalWork::Drop {
            tables: tables.clone(),
            if_exists: *if_exists,
            cascade: *cascade,
        }),
        LogicalStatement::Check { table, repair } => {
            let (catalog, schema, table) = qualify(names, table)?;
            if catalog != KOIOS_CATALOG {
                return sql_err!(
                    codes::WRONG_OBJECT_TYPE,
                    "\"{catalog}.{schema}.{table}\" is not a mirrored table: VERIFY TABLE and REPAIR TABLE compare the copies of a mirrored table of the koios catalog"
                );
            }
            Ok(LogicalWork::Check {
                schema,
                table,
                repair: *repair,
            })
        }
        LogicalStatement::AlterMembers {
            table,
            change,
            mirror,
            wait,
        } => {
            let (catalog, schema, table) = qualify(names, table)?;
            if catalog != KOIOS_CATALOG {
                return if *mirror {
                    sql_err!(
                        codes::WRONG_OBJECT_TYPE,
                        "\"{catalog}.{schema}.{table}\" is not a mirrored table: ADD MIRROR and DROP MIRROR change the copies of a mirrored table of the koios catalog"
                    )
                } else {
                    sql_err!(
                        codes::WRONG_OBJECT_TYPE,
                        "\"{catalog}.{schema}.{table}\" is not a striped or mirrored table: ADD, DROP and MOVE MEMBER change the members of a logical table of the koios catalog"
                    )
                };
            }
            let (what, whats) = if *mirror {
                ("copy", "copies")
            } else {
                ("member", "members")
            };
            let change = change.try_map(|member| {
                let (source, member_schema, member_table) = qualify(names, member)?;
                if !is_source(&source) {
                    return sql_err!(
                        codes::UNDEFINED_OBJECT,
                        "{what} {member}: '{source}' is not a source; {whats} are tables of sources (source.schema.table)"
                    );
                }
                Ok(MemberName {
                    source,
                    schema: member_schema,
                    table: member_table,
                })
            })?;
            Ok(LogicalWork::AlterMembers {
                schema,
                table,
                change,
                mirror: *mirror,
                wait: *wait,
            })
        }
    }
}

/// The layout `MIRRORED … WITH (options)` asks for over `copies` members.
fn mirrored_layout(options: &[(String, ast::Value)], copies: usize) -> Result<Layout> {
    let (write_quorum, read) = copy_rules(options, copies, "a mirrored table")?;
    Ok(Layout::Mirrored { write_quorum, read })
}

/// The layout `STRIPED BY HASH (key) ACROSS (…) [WITH (copies = k, …)]`
/// asks for over `members` members.
fn hash_layout(
    key: &str,
    options: &[(String, ast::Value)],
    members: usize,
    primary_key: &[String],
) -> Result<Layout> {
    let mut copies = 1;
    let mut rules = Vec::new();
    for (name, value) in options {
        if name != "copies" {
            rules.push((name.clone(), value.clone()));
            continue;
        }
        copies = match value {
            ast::Value::Number(n, _) => match n.parse::<usize>() {
                Ok(k) if (1..=members).contains(&k) && members.is_multiple_of(k) => k,
                _ => {
                    return sql_err!(
                        codes::INVALID_PARAMETER_VALUE,
                        "copies must be a whole number from 1 to the number of members ({members}) that divides it, not {n}: the members are taken copies at a time, each group holding the same rows"
                    );
                }
            },
            other => {
                return sql_err!(
                    codes::INVALID_PARAMETER_VALUE,
                    "invalid value for copies: {other} (it takes a number)"
                );
            }
        };
    }
    if copies == 1 && !rules.is_empty() {
        return sql_err!(
            codes::INVALID_PARAMETER_VALUE,
            "unknown option {} of a striped table (it takes copies, and with copies write_quorum and read)",
            rules[0].0
        );
    }
    let replication = if copies > 1 {
        if primary_key.is_empty() {
            return sql_err!(
                codes::INVALID_TABLE_DEFINITION,
                "a striped table with copies needs a PRIMARY KEY: its copies are compared, repaired and caught up row by row by it"
            );
        }
        let (write_quorum, read) = copy_rules(&rules, copies, "a striped table with copies")?;
        Some(Replication {
            copies,
            write_quorum,
            read,
        })
    } else {
        None
    };
    Ok(Layout::StripedHash {
        key: key.to_string(),
        buckets: HASH_BUCKETS,
        copies: replication,
    })
}

/// `write_quorum` (default: every copy) and `read` (default: fastest)
/// among `options`, for rows kept on `copies` members.
fn copy_rules(
    options: &[(String, ast::Value)],
    copies: usize,
    what: &str,
) -> Result<(usize, ReadChoice)> {
    let mut write_quorum = copies;
    let mut read = ReadChoice::Fastest;
    for (name, value) in options {
        match (name.as_str(), value) {
            ("write_quorum", ast::Value::Number(n, _)) => {
                write_quorum = match n.parse::<usize>() {
                    Ok(q) if (1..=copies).contains(&q) => q,
                    _ => {
                        return sql_err!(
                            codes::INVALID_PARAMETER_VALUE,
                            "write_quorum must be a whole number from 1 to the number of copies ({copies}), not {n}"
                        );
                    }
                }
            }
            ("read", ast::Value::SingleQuotedString(choice)) => {
                read = match choice.to_ascii_lowercase().as_str() {
                    "fastest" => ReadChoice::Fastest,
                    "first" => ReadChoice::First,
                    _ => {
                        return sql_err!(
                            codes::INVALID_PARAMETER_VALUE,
                            "read must be 'fastest' or 'first', not '{choice}'"
                        );
                    }
                }
            }
            ("write_quorum" | "read", value) => {
                return sql_err!(
                    codes::INVALID_PARAMETER_VALUE,
                    "invalid value for {name}: {value} (write_quorum takes a number, read 'fastest' or 'first')"
                );
            }
            _ => {
                return sql_err!(
                    codes::INVALID_PARAMETER_VALUE,
                    "unknown option {name} of {what} (it takes write_quorum and read)"
                );
            }
        }
    }
    Ok((write_quorum, read))
}

fn striped_definition(
    create: &ast::CreateTable,
    striping: &Striping,
    members: &[ObjectName],
    names: &Names<'_>,
    is_source: &dyn Fn(&str) -> bool,
) -> Result<LogicalTableDef> {
    let (catalog, schema, table) = qualify(names, &create.name)?;
    let kind = match striping {
        Striping::Mirrored(_) => "mirrored",
        Striping::Hash(..) | Striping::RoundRobin => "striped",
    };
    if catalog != KOIOS_CATALOG {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "a {kind} table is a table of Koios's own catalog: name it {KOIOS_CATALOG}.{DEFAULT_SCHEMA}.{table}, and its members in the sources"
        );
    }
    if schema != DEFAULT_SCHEMA {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "logical tables live in {KOIOS_CATALOG}.{DEFAULT_SCHEMA} (not in schema \"{schema}\")"
        );
    }
    if create.query.is_some() {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "CREATE TABLE … AS of a {kind} table is not supported: create it, then INSERT … SELECT"
        );
    }
    // The members, resolved; each must be a source's table.
    let mut member_names = Vec::with_capacity(members.len());
    for member in members {
        let (source, member_schema, member_table) = qualify(names, member)?;
        if !is_source(&source) {
            return sql_err!(
                codes::UNDEFINED_OBJECT,
                "member {member}: '{source}' is not a source; members are tables of sources (source.schema.table)"
            );
        }
        let name = MemberName {
            source,
            schema: member_schema,
            table: member_table,
        };
        if member_names.contains(&name) {
            return sql_err!(codes::DUPLICATE_OBJECT, "member {name} is listed twice");
        }
        member_names.push(name);
    }
    // The declared columns, read as DDL into the first member would be.
    let mut as_member = create.clone();
    as_member.name = members[0].clone();
    let parsed = parse_ddl(&SqlStatement::CreateTable(as_member), names)?
        .ok_or_else(|| sql_error!(codes::INTERNAL_ERROR, "member is not a source's table"))?;
    if !parsed.defaults.is_empty() {
        return sql_err!(
            codes::FEATURE_NOT_SUPPORTED,
            "DEFAULT on a {kind} table's column is not supported"
        );
    }
    let Some(SchemaChange::CreateTable(declared)) = parsed.changes.into_iter().next() else {
        return sql_err!(codes::INTERNAL_ERROR, "CREATE TABLE read without its table");
    };
    let columns: Vec<LogicalColumn> = declared
        .columns
        .iter()
        .map(|c| LogicalColumn {
            name: c.name.clone(),
            data_type: c.data_type.clone(),
            nullable: c.nullable,
        })
        .collect();
    let layout = match striping {
        Striping::Hash(key, options) => {
            if !columns.iter().any(|c| &c.name == key) {
                return sql_err!(
                    codes::UNDEFINED_COLUMN,
                    "striping key \"{key}\" is not a column of {table}"
                );
            }
            if !declared.primary_key.is_empty() && !declared.primary_key.contains(key) {
                return sql_err!(
                    codes::INVALID_TABLE_DEFINITION,
                    "striping key \"{key}\" must be a column of the primary key ({}): each member keeps the key unique only for the rows it holds",
                    declared.primary_key.join(", ")
                );
            }
            hash_layout(key, options, member_names.len(), &declared.primary_key)?
        }
        Striping::Mirrored(options) => {
            if declared.primary_key.is_empty() {
                return sql_err!(
                    codes::INVALID_TABLE_DEFINITION,
                    "a mirrored table needs a PRIMARY KEY: its copies are compared, repaired and caught up row by row by it"
                );
            }
            mirrored_layout(options, member_names.len())?
        }
        Striping::RoundRobin => {
            if !declared.primary_key.is_empty() {
                return sql_err!(
                    codes::INVALID_TABLE_DEFINITION,
                    "a round-robin striped table cannot keep a primary key unique across its members; stripe it BY HASH on the key, or declare no PRIMARY KEY"
                );
            }
            Layout::StripedRoundRobin {
                batch_rows: ROUND_ROBIN_BATCH_ROWS,
            }
        }
    };
    let definition = LogicalTableDef {
        schema,
        table,
        columns,
        primary_key: declared.primary_key.clone(),
        layout,
        members: member_names,
        owners: None,
        rebalance: None,
        leftovers: Vec::new(),
    };
    if let Some(key) = definition.layout.key() {
        let declared_schema = definition.arrow_schema()?;
        let key_type = declared_schema.field_with_name(key)?.data_type();
        if !super::placement::hashable(key_type) {
            return sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "striping key \"{key}\" of type {key_type} cannot be hashed; stripe on an integer, text, numeric, date or timestamp column"
            );
        }
    }
    Ok(definition)
}

impl Engine {
    /// Carries out a statement about logical tables.
    pub async fn run_logical(&self, work: LogicalWork) -> Result<()> {
        match work {
            LogicalWork::Create {
                definition,
                if_not_exists,
            } => self.create_striped(definition, if_not_exists).await,
            LogicalWork::Drop {
                tables,
                if_exists,
                cascade,
            } => self.drop_logical(&tables, if_exists, cascade).await,
            LogicalWork::AlterMembers {
                schema,
                table,
                change: MemberChange::Add(copy),
                mirror: true,
                ..
            } => self
                .alter_mirror(
                    &schema,
                    &table,
                    copy,
                    super::alter::CopyChange::Add { replacing: None },
                )
                .await
                .map(|_| ()),
            LogicalWork::AlterMembers {
                schema,
                table,
                change: MemberChange::Drop(copy),
                mirror: true,
                ..
            } => self
                .alter_mirror(&schema, &table, copy, super::alter::CopyChange::Drop)
                .await
                .map(|_| ()),
            LogicalWork::AlterMembers { .. } => Err(datafusion::error::DataFusionError::Internal(
                "ADD, DROP and MOVE MEMBER run through Engine::alter_members".into(),
            )),
            LogicalWork::Check { .. } => Err(datafusion::error::DataFusionError::Internal(
                "VERIFY TABLE runs through Engine::check_mirrored".into(),
            )),
        }
    }

    async fn create_striped(&self, definition: LogicalTableDef, if_not_exists: bool) -> Result<()> {
        let (schema, table) = (definition.schema.clone(), definition.table.clone());
        let _ddl = self.ddl.lock().await;
        if self.logical_table(&schema, &table).is_some() || self.koios_table_exists(&table).await {
            if if_not_exists {
                return Ok(());
            }
            return sql_err!(
                codes::DUPLICATE_TABLE,
                "relation \"{KOIOS_CATALOG}.{schema}.{table}\" already exists"
            );
        }
        let declared_schema = definition.arrow_schema()?;
        // Members: checked if they exist, created if not.
        let mut created: Vec<&MemberName> = Vec::new();
        let mut outcome = Ok(());
        for member in &definition.members {
            outcome = self
                .check_or_create_member(&definition, &declared_schema, member)
                .await
                .map(|made| {
                    if made {
                        created.push(member);
                    }
                });
            if outcome.is_err() {
                break;
            }
        }
        if outcome.is_ok() {
            let stored = StoredLogicalTable {
                name: definition.key(),
                definition: definition.to_json()?,
                position: 0,
                created_at: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            };
            outcome = self.store.insert_logical_table(&stored).await;
            if outcome.is_ok() {
                let logical = LogicalTable::new(
                    definition.clone(),
                    0,
                    TableOrigin::Sql,
                    stored.created_at,
                    Arc::clone(&self.store),
                )?;
                self.logical
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(definition.key(), Arc::new(logical));
            }
        }
        if outcome.is_err() {
            for member in created {
                let undo = RemoteDdl {
                    source: member.source.clone(),
                    changes: vec![SchemaChange::DropTable {
                        name: member.table_name(),
                        if_exists: true,
                    }],
                };
                if let Err(e) = self.change_schema(&undo).await {
                    tracing::warn!(member = %member, error = %e, "could not drop a member created by a failed CREATE TABLE … STRIPED");
                }
            }
        }
        self.catalog_changed();
        outcome
    }

    /// Checks an existing member's columns against the declared ones, or
    /// creates the member; `true` if it was created.
    pub(super) async fn check_or_create_member(
        &self,
        definition: &LogicalTableDef,
        declared: &arrow::datatypes::SchemaRef,
        member: &MemberName,
    ) -> Result<bool> {
        let source = self.live_source(&member.source)?;
        let existing = match source.catalog().schema(&member.schema) {
            Some(schema) => schema.table(&member.table).await?,
            None => None,
        };
        let Some(existing) = existing else {
            let ddl = RemoteDdl {
                source: member.source.clone(),
                changes: vec![SchemaChange::CreateTable(
                    definition.member_definition(member),
                )],
            };
            self.change_schema(&ddl).await.map_err(|e| {
                let error = crate::engine::error::sqlstate(&e);
                sql_error!(
                    codes::INVALID_TABLE_DEFINITION,
                    "member {member} could not be created: {}",
                    error.message
                )
            })?;
            return Ok(true);
        };
        let schema = existing.schema();
        for field in declared.fields() {
            let Ok(found) = schema.field_with_name(field.name()) else {
                return sql_err!(
                    codes::UNDEFINED_COLUMN,
                    "member {member} has no column \"{}\" (the striped table declares it {})",
                    field.name(),
                    declared_type_name(definition, field.name())
                );
            };
            if !compatible(found.data_type(), field.data_type()) {
                return sql_err!(
                    codes::DATATYPE_MISMATCH,
                    "member {member}: column \"{}\" is of type {}, the striped table declares {}",
                    field.name(),
                    found.data_type(),
                    declared_type_name(definition, field.name())
                );
            }
        }
        Ok(false)
    }

    /// Whether Koios's own `public` schema holds a (non-logical) table `name`.
    async fn koios_table_exists(&self, name: &str) -> bool {
        match self
            .catalogs
            .catalog(KOIOS_CATALOG)
            .and_then(|c| c.schema(DEFAULT_SCHEMA))
        {
            Some(schema) => schema.table_exist(name),
            None => false,
        }
    }

    async fn drop_logical(
        &self,
        tables: &[(String, String)],
        if_exists: bool,
        cascade: bool,
    ) -> Result<()> {
        let _ddl = self.ddl.lock().await;
        let mut member_errors = Vec::new();
        for (schema, table) in tables {
            let Some(logical) = self.logical_table(schema, table) else {
                if if_exists {
                    continue;
                }
                return sql_err!(
                    codes::UNDEFINED_TABLE,
                    "table \"{KOIOS_CATALOG}.{schema}.{table}\" does not exist"
                );
            };
            if logical.origin == TableOrigin::File {
                return sql_err!(
                    codes::FEATURE_NOT_SUPPORTED,
                    "table \"{}\" is declared in the configuration file ([[table]]); remove it there",
                    logical.display_name()
                );
            }
            let key = logical.definition.key();
            self.store.delete_logical_table(&key).await?;
            self.store.forget_mirror(&key).await?;
            self.logical
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            self.catalog_changed();
            if cascade {
                for member in &logical.definition.members {
                    let ddl = RemoteDdl {
                        source: member.source.clone(),
                        changes: vec![SchemaChange::DropTable {
                            name: member.table_name(),
                            if_exists: true,
                        }],
                    };
                    if let Err(e) = self.change_schema(&ddl).await {
                        member_errors.push(format!(
                            "{member}: {}",
                            crate::engine::error::sqlstate(&e).message
                        ));
                    }
                }
            }
        }
        if !member_errors.is_empty() {
            return sql_err!(
                codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                "the striped table was dropped, but these members could not be: {}; drop them in their sources",
                member_errors.join("; ")
            );
        }
        Ok(())
    }
}

fn declared_type_name(definition: &LogicalTableDef, column: &str) -> String {
    definition
        .columns
        .iter()
        .find(|c| c.name == column)
        .map(|c| c.data_type.to_string())
        .unwrap_or_default()
}
