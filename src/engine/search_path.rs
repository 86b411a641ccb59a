//! `search_path`: which schemas unqualified names resolve in.
//!
//! A session whose `search_path` names one existing schema simply uses it
//! as DataFusion's default schema. With several, the default schema is a
//! made-up name ([`SEARCH_PATH_PREFIX`] and the schemas), which the
//! session's catalogs (`crate::engine::session_catalog`) resolve to one
//! [`SearchPathSchema`] that looks names up in each, in order.

use std::sync::Arc;

use datafusion::catalog::{SchemaProvider, TableProvider};
use datafusion::error::Result;

use crate::engine::settings::Settings;

/// The schemas of `search_path`, unquoted, without `$user`.
pub fn search_path(settings: &Settings) -> Vec<String> {
    settings
        .get("search_path")
        .unwrap_or("public")
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_string())
        .filter(|s| !s.is_empty() && s != "$user")
        .collect()
}

/// The default schema of a session whose `search_path` names several
/// existing schemas: `search_path:` and the schemas, separated by U+001F.
pub const SEARCH_PATH_PREFIX: &str = "search_path:";
pub const SEARCH_PATH_SEPARATOR: char = '\u{1f}';

/// The schemas of `search_path` as one: an unqualified name is the first
/// schema's table of that name, as in PostgreSQL; new tables go to the
/// first schema.
#[derive(Debug)]
pub(crate) struct SearchPathSchema {
    pub(crate) schemas: Vec<Arc<dyn SchemaProvider>>,
}

#[async_trait::async_trait]
impl SchemaProvider for SearchPathSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.schemas.iter().flat_map(|s| s.table_names()).collect();
        names.sort();
        names.dedup();
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        for schema in &self.schemas {
            if schema.table_exist(name)
                && let Some(table) = schema.table(name).await?
            {
                return Ok(Some(table));
            }
        }
        Ok(None)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.schemas.iter().any(|s| s.table_exist(name))
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        match self.schemas.first() {
            Some(first) => first.register_table(name, table),
            None => datafusion::common::plan_err!("search_path names no existing schema"),
        }
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        for schema in &self.schemas {
            if schema.table_exist(name) {
                return schema.deregister_table(name);
            }
        }
        Ok(None)
    }
}
