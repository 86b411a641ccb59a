//! DDL statements naming a source's tables, read into
//! [`SchemaChange`]s: `CREATE TABLE`, `DROP TABLE`, `TRUNCATE`,
//! `ALTER TABLE … ADD/DROP/RENAME COLUMN, RENAME TO`, `CREATE/DROP SCHEMA`.
//! A statement whose names resolve to Koios's own catalog is not read here
//! (DataFusion keeps those tables in memory); a clause Koios cannot carry
//! to a backend is refused with 0A000 rather than dropped silently.

use datafusion::error::Result;
use datafusion::sql::sqlparser::ast::{
    self, AlterTableOperation, ColumnOption, Expr as SqlExpr, Ident, ObjectName, ObjectType,
    SchemaName, Statement as SqlStatement, TableConstraint,
};
use koios_connector::ddl::{ColumnDefinition, SchemaChange, TableDefinition, TableName};
use koios_connector::sql_err;

use super::types::column_type;
use crate::engine::error::codes;

/// Where unqualified names resolve, and which catalogs are sources.
pub struct Names<'a> {
    /// The session's database (catalog).
    pub database: &'a str,
    /// The first schema of the session's `search_path`.
    pub current_schema: &'a str,
    pub is_source: &'a dyn Fn(&str) -> bool,
}

/// The changes one statement makes in one source. Column defaults are
/// still SQL here (`defaults`); the session evaluates them.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedDdl {
    pub source: String,
    pub changes: Vec<SchemaChange>,
    /// `(column, expression)` of each `DEFAULT`, in the order written.
    pub defaults: Vec<(String, SqlExpr)>,
    /// The query of `CREATE TABLE … AS query`: the one change is then a
    /// `CreateTable` whose columns come from the query.
    pub as_query: Option<Box<ast::Query>>,
}

/// The changes `statement` makes, if it is DDL naming a source's tables.
pub fn parse_ddl(statement: &SqlStatement, names: &Names) -> Result<Option<ParsedDdl>> {
    let mut parsed = Collector::new(names);
    match statement {
        SqlStatement::CreateTable(create) => {
            let Some(table) = parsed.table(&create.name)? else {
                return Ok(None);
            };
            if create.query.is_some()
                && !(create.columns.is_empty() && create.constraints.is_empty())
            {
                return not_yet("CREATE TABLE … AS with a column list");
            }
            parsed.as_query = create.query.clone();
            if create.or_replace
                || create.temporary
                || create.like.is_some()
                || create.clone.is_some()
            {
                return not_yet("CREATE OR REPLACE, TEMPORARY, LIKE or CLONE of a source's table");
            }
            let mut definition = TableDefinition {
                name: table,
                columns: Vec::new(),
                primary_key: Vec::new(),
                if_not_exists: create.if_not_exists,
            };
            for column in &create.columns {
                let (column, key) = parsed.column(column)?;
                if key {
                    definition.primary_key.push(column.name.clone());
                }
                definition.columns.push(column);
            }
            for constraint in &create.constraints {
                match constraint {
                    TableConstraint::PrimaryKey(key) if definition.primary_key.is_empty() => {
                        for part in &key.columns {
                            match &part.column.expr {
                                SqlExpr::Identifier(ident) => {
                                    definition.primary_key.push(normalize(ident))
                                }
                                other => return not_yet(&format!("a primary key on {other}")),
                            }
                        }
                    }
                    TableConstraint::PrimaryKey(_) => {
                        return sql_err!(
                            codes::INVALID_TABLE_DEFINITION,
                            "multiple primary keys for table \"{}\" are not allowed",
                            definition.name.table
                        );
                    }
                    other => return not_yet(&format!("the constraint {other}")),
                }
            }
            for key in &definition.primary_key {
                if let Some(column) = definition.columns.iter_mut().find(|c| &c.name == key) {
                    // A key column is NOT NULL in every backend.
                    column.nullable = false;
                } else {
                    return sql_err!(
                        codes::UNDEFINED_COLUMN,
                        "column \"{key}\" named in key does not exist"
                    );
                }
            }
            parsed.push(SchemaChange::CreateTable(definition));
        }
        SqlStatement::Drop {
            object_type,
            if_exists,
            names: dropped,
            cascade,
            ..
        } => {
            let if_exists = *if_exists;
            match object_type {
                ObjectType::Table => {
                    for name in dropped {
                        if let Some(name) = parsed.table(name)? {
                            parsed.push(SchemaChange::DropTable { name, if_exists });
                        }
                    }
                }
                ObjectType::Schema => {
                    for name in dropped {
                        if let Some(name) = parsed.schema(name)? {
                            parsed.push(SchemaChange::DropSchema { name, if_exists });
                        }
                    }
                }
                _ => return Ok(None),
            }
            if *cascade && parsed.source.is_some() {
                return not_yet("DROP … CASCADE on a source");
            }
        }
        SqlStatement::Truncate(truncate) => {
            for target in &truncate.table_names {
                if let Some(name) = parsed.table(&target.name)? {
                    parsed.push(SchemaChange::Truncate(name));
                }
            }
        }
        SqlStatement::AlterTable(alter) => {
            let Some(table) = parsed.table(&alter.name)? else {
                return Ok(None);
            };
            for operation in &alter.operations {
                let change = match operation {
                    AlterTableOperation::AddColumn {
                        if_not_exists,
                        column_def,
                        column_position: None,
                        ..
                    } => {
                        let (column, key) = parsed.column(column_def)?;
                        if key {
                            return not_yet("adding a primary key column");
                        }
                        SchemaChange::AddColumn {
                            table: table.clone(),
                            column,
                            if_not_exists: *if_not_exists,
                        }
                    }
                    AlterTableOperation::DropColumn {
                        column_names,
                        if_exists,
                        drop_behavior: None,
                        ..
                    } => {
                        for column in &column_names[..column_names.len().saturating_sub(1)] {
                            parsed.push(SchemaChange::DropColumn {
                                table: table.clone(),
                                column: normalize(column),
                                if_exists: *if_exists,
                            });
                        }
                        let Some(last) = column_names.last() else {
                            continue;
                        };
                        SchemaChange::DropColumn {
                            table: table.clone(),
                            column: normalize(last),
                            if_exists: *if_exists,
                        }
                    }
                    AlterTableOperation::RenameColumn {
                        old_column_name,
                        new_column_name,
                    } => SchemaChange::RenameColumn {
                        table: table.clone(),
                        from: normalize(old_column_name),
                        to: normalize(new_column_name),
                    },
                    AlterTableOperation::RenameTable { table_name } => {
                        let (ast::RenameTableNameKind::To(new) | ast::RenameTableNameKind::As(new)) =
                            table_name;
                        let [to] = new.0.as_slice() else {
                            return not_yet("renaming a table into another schema");
                        };
                        let to = to.as_ident().map(normalize).ok_or_else(|| {
                            koios_connector::sql_error!(
                                codes::SYNTAX_ERROR,
                                "invalid table name {new}"
                            )
                        })?;
                        SchemaChange::RenameTable {
                            table: table.clone(),
                            to,
                        }
                    }
                    other => return not_yet(&format!("ALTER TABLE … {other} on a source")),
                };
                parsed.push(change);
            }
        }
        SqlStatement::CreateSchema {
            schema_name,
            if_not_exists,
            ..
        } => {
            let SchemaName::Simple(name) = schema_name else {
                return Ok(None);
            };
            if let Some(name) = parsed.schema(name)? {
                parsed.push(SchemaChange::CreateSchema {
                    name,
                    if_not_exists: *if_not_exists,
                });
            }
        }
        _ => return Ok(None),
    }
    parsed.finish()
}

/// The source and table `name` resolves to, if it names a source's table.
pub fn resolve_table(names: &Names, name: &ObjectName) -> Result<Option<(String, TableName)>> {
    let mut collector = Collector::new(names);
    Ok(collector
        .table(name)?
        .and_then(|table| collector.source.map(|source| (source, table))))
}

/// Builds the changes of one statement, checking they all name one source.
struct Collector<'a> {
    names: &'a Names<'a>,
    source: Option<String>,
    /// A name of the statement resolved outside every source.
    local: bool,
    changes: Vec<SchemaChange>,
    defaults: Vec<(String, SqlExpr)>,
    as_query: Option<Box<ast::Query>>,
}

impl<'a> Collector<'a> {
    fn new(names: &'a Names<'a>) -> Self {
        Self {
            names,
            source: None,
            local: false,
            changes: Vec::new(),
            defaults: Vec::new(),
            as_query: None,
        }
    }

    fn push(&mut self, change: SchemaChange) {
        self.changes.push(change);
    }

    /// `[catalog.][schema.]table`, if `catalog` is a source.
    fn table(&mut self, name: &ObjectName) -> Result<Option<TableName>> {
        let (catalog, schema, table) = qualify(self.names, name)?;
        Ok(self
            .source(&catalog)?
            .then_some(TableName { schema, table }))
    }

    /// `[catalog.]schema`, if `catalog` is a source.
    fn schema(&mut self, name: &ObjectName) -> Result<Option<String>> {
        let parts = parts(name)?;
        let (catalog, schema) = match parts.as_slice() {
            [schema] => (self.names.database.to_string(), schema.clone()),
            [catalog, schema] => (catalog.clone(), schema.clone()),
            _ => return sql_err!(codes::SYNTAX_ERROR, "improper qualified name: {name}"),
        };
        Ok(self.source(&catalog)?.then_some(schema))
    }

    /// Whether `catalog` is a source; a statement may not mix sources, nor
    /// a source and Koios's own catalog.
    fn source(&mut self, catalog: &str) -> Result<bool> {
        if !(self.names.is_source)(catalog) {
            self.local = true;
            return Ok(false);
        }
        match &self.source {
            Some(source) if source != catalog => sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "one statement cannot change tables of two sources ('{source}' and '{catalog}')"
            ),
            _ => {
                self.source = Some(catalog.to_string());
                Ok(true)
            }
        }
    }

    /// A declared column, and whether it is marked `PRIMARY KEY`.
    fn column(&mut self, column: &ast::ColumnDef) -> Result<(ColumnDefinition, bool)> {
        let name = normalize(&column.name);
        let mut definition = ColumnDefinition {
            data_type: column_type(&name, &column.data_type)?,
            name,
            nullable: true,
            default: None,
        };
        let mut key = false;
        for option in &column.options {
            match &option.option {
                ColumnOption::Null => definition.nullable = true,
                ColumnOption::NotNull => definition.nullable = false,
                ColumnOption::Default(expr) => {
                    self.defaults.push((definition.name.clone(), expr.clone()))
                }
                ColumnOption::PrimaryKey(_) => key = true,
                other => {
                    return not_yet(&format!(
                        "the column option {other} (column \"{}\")",
                        definition.name
                    ));
                }
            }
        }
        Ok((definition, key))
    }

    fn finish(self) -> Result<Option<ParsedDdl>> {
        match self.source {
            None => Ok(None),
            Some(source) if self.local => sql_err!(
                codes::FEATURE_NOT_SUPPORTED,
                "one statement cannot change tables of source '{source}' and of Koios's own catalog"
            ),
            Some(source) => Ok(Some(ParsedDdl {
                source,
                changes: self.changes,
                defaults: self.defaults,
                as_query: self.as_query,
            })),
        }
    }
}

/// An identifier as PostgreSQL reads it: folded to lower case unless quoted.
pub(crate) fn normalize(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_lowercase(),
    }
}

/// `[catalog.][schema.]table` as (catalog, schema, table), the parts
/// left out taken from the session (its database and current schema).
pub fn qualify(names: &Names, name: &ObjectName) -> Result<(String, String, String)> {
    let parts = parts(name)?;
    Ok(match parts.as_slice() {
        [table] => (
            names.database.to_string(),
            names.current_schema.to_string(),
            table.clone(),
        ),
        [schema, table] => (names.database.to_string(), schema.clone(), table.clone()),
        [catalog, schema, table] => (catalog.clone(), schema.clone(), table.clone()),
        _ => return sql_err!(codes::SYNTAX_ERROR, "improper qualified name: {name}"),
    })
}

fn parts(name: &ObjectName) -> Result<Vec<String>> {
    name.0
        .iter()
        .map(|part| {
            part.as_ident().map(normalize).ok_or_else(|| {
                koios_connector::sql_error!(codes::SYNTAX_ERROR, "invalid name {name}")
            })
        })
        .collect()
}

fn not_yet<T>(what: &str) -> Result<T> {
    sql_err!(codes::FEATURE_NOT_SUPPORTED, "{what} is not supported")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::session::{KoiosStatement, parse_sql};
    use datafusion::sql::parser::Statement as DfStatement;
    use koios_connector::ddl::ColumnType;

    fn parse(sql: &str) -> Result<Option<ParsedDdl>> {
        let KoiosStatement::Sql(statement) = parse_sql(sql).expect("parses").remove(0) else {
            panic!("not SQL");
        };
        let DfStatement::Statement(statement) = *statement else {
            panic!("not a statement");
        };
        let is_source = |name: &str| name == "pg" || name == "my";
        parse_ddl(
            &statement,
            &Names {
                database: "koios",
                current_schema: "public",
                is_source: &is_source,
            },
        )
    }

    #[test]
    fn reads_a_create_table() {
        let parsed = parse(
            "CREATE TABLE pg.public.\"Mixed\" (Id bigint PRIMARY KEY, label varchar(20) NOT NULL DEFAULT 'x', at timestamptz)",
        )
        .expect("reads")
        .expect("a source's table");
        assert_eq!(parsed.source, "pg");
        assert_eq!(parsed.defaults.len(), 1);
        let SchemaChange::CreateTable(table) = &parsed.changes[0] else {
            panic!("{parsed:?}");
        };
        assert_eq!(table.name.table, "Mixed");
        assert_eq!(table.primary_key, vec!["id".to_string()]);
        assert!(!table.columns[0].nullable);
        assert!(!table.columns[1].nullable);
        assert_eq!(table.columns[2].data_type, ColumnType::TimestampTz);
    }

    #[test]
    fn leaves_koios_tables_to_datafusion_and_refuses_mixtures() {
        assert_eq!(parse("CREATE TABLE t (a int)").expect("reads"), None);
        assert_eq!(parse("DROP TABLE koios.public.t").expect("reads"), None);
        assert!(parse("DROP TABLE pg.public.a, my.db.b").is_err());
        assert!(parse("DROP TABLE pg.public.a, t").is_err());
        assert!(parse("CREATE TABLE pg.public.t (a int CHECK (a > 0))").is_err());
        let create_as = parse("CREATE TABLE pg.public.t AS SELECT 1")
            .expect("reads")
            .expect("a source's table");
        assert!(create_as.as_query.is_some());
        assert!(parse("CREATE TABLE pg.public.t (a int) AS SELECT 1").is_err());
    }

    #[test]
    fn reads_alter_table_operations() {
        let parsed = parse(
            "ALTER TABLE my.db.t ADD COLUMN n int, DROP COLUMN IF EXISTS old, RENAME COLUMN a TO b",
        )
        .expect("reads")
        .expect("a source's table");
        assert_eq!(parsed.changes.len(), 3);
        let parsed = parse("ALTER TABLE pg.public.t RENAME TO u")
            .expect("reads")
            .expect("a source's table");
        assert!(matches!(&parsed.changes[0], SchemaChange::RenameTable { to, .. } if to == "u"));
    }
}
