//! Connecting to MongoDB and finding its databases and collections; a
//! collection's columns come from the configuration or from a `$sample`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::catalog::TableProvider;
use datafusion::error::Result;
use futures::TryStreamExt;
use koios_connector::RemoteError;
use koios_connector::catalog::Discovery;
use mongodb::bson::{Document, doc};
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection};

use crate::options::MongoOptions;
use crate::table::MongoTable;

/// Databases MongoDB keeps for itself.
const SYSTEM_DATABASES: &[&str] = &["admin", "local", "config"];

/// One attached MongoDB deployment (cheap to clone: the driver's client is shared).
#[derive(Clone)]
pub struct MongoDiscovery {
    pub(crate) source: String,
    pub(crate) client: Client,
    pub(crate) options: MongoOptions,
    default_database: Option<String>,
    /// Strings that must never appear in a message (the URL's password).
    secrets: Vec<String>,
}

impl std::fmt::Debug for MongoDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MongoDiscovery({})", self.source)
    }
}

impl MongoDiscovery {
    pub async fn connect(source: &str, url: &str, options: MongoOptions) -> Result<Self> {
        let secrets = password_of(url).into_iter().collect::<Vec<_>>();
        let scrub = |message: String| {
            secrets
                .iter()
                .fold(message, |m, secret| m.replace(secret.as_str(), "***"))
        };
        let mut client_options = ClientOptions::parse(url).await.map_err(|e| {
            remote(format!(
                "source '{source}': invalid MongoDB URL: {}",
                scrub(e.kind.to_string())
            ))
        })?;
        if client_options.server_selection_timeout.is_none() {
            // The driver waits 30 s for a server by default: too long for a
            // source that is simply down.
            client_options.server_selection_timeout = Some(Duration::from_secs(5));
        }
        if client_options.app_name.is_none() {
            client_options.app_name = Some("koios".into());
        }
        let default_database = client_options.default_database.clone();
        let client = Client::with_options(client_options).map_err(|e| {
            remote(format!(
                "source '{source}': cannot connect: {}",
                scrub(e.kind.to_string())
            ))
        })?;
        let discovery = Self {
            source: source.to_string(),
            client,
            options,
            default_database,
            secrets,
        };
        discovery
            .client
            .database("admin")
            .run_command(doc! { "ping": 1 })
            .await
            .map_err(|e| discovery.error("cannot connect", &e))?;
        Ok(discovery)
    }

    /// A driver error as a Koios error naming the source, without secrets.
    pub(crate) fn error(
        &self,
        context: &str,
        e: &mongodb::error::Error,
    ) -> datafusion::error::DataFusionError {
        let message = self.secrets.iter().fold(e.kind.to_string(), |m, secret| {
            m.replace(secret.as_str(), "***")
        });
        remote(format!("source '{}': {context}: {message}", self.source))
    }

    pub(crate) fn collection<T: Send + Sync>(&self, database: &str, name: &str) -> Collection<T> {
        self.client.database(database).collection(name)
    }

    /// Whether `database.name` exists now.
    pub(crate) async fn collection_exists(&self, database: &str, name: &str) -> Result<bool> {
        let names = self
            .client
            .database(database)
            .list_collection_names()
            .filter(doc! { "name": name })
            .await
            .map_err(|e| self.error(&format!("listing collections of {database}"), &e))?;
        Ok(names.iter().any(|n| n == name))
    }
}

fn remote(message: String) -> datafusion::error::DataFusionError {
    RemoteError {
        sqlstate: None,
        message,
    }
    .into_datafusion()
}

/// The password of a `mongodb://user:password@…` URL, percent-decoded too.
fn password_of(url: &str) -> Vec<String> {
    let Some(rest) = url.split_once("://").map(|(_, r)| r) else {
        return Vec::new();
    };
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let Some((credentials, _)) = authority.rsplit_once('@') else {
        return Vec::new();
    };
    let Some((_, password)) = credentials.split_once(':') else {
        return Vec::new();
    };
    if password.is_empty() {
        return Vec::new();
    }
    let mut secrets = vec![password.to_string()];
    let decoded = percent_decode(password);
    if decoded != password {
        secrets.push(decoded);
    }
    secrets
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        if bytes[i] == b'%'
            && let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[async_trait]
impl Discovery for MongoDiscovery {
    fn source_name(&self) -> &str {
        &self.source
    }

    async fn close(&self) {
        // The driver's pool workers must stop while the runtime runs.
        self.client.clone().shutdown().await;
    }

    async fn schema_names(&self) -> Result<Vec<String>> {
        let all = self
            .client
            .list_database_names()
            .await
            .map_err(|e| self.error("listing databases", &e))?;
        let mut names = koios_connector::catalog::exposed_databases(
            all,
            self.options.databases.as_deref(),
            self.default_database.as_deref(),
            SYSTEM_DATABASES,
        );
        names.sort();
        Ok(names)
    }

    async fn table_names(&self, schema: &str) -> Result<Vec<String>> {
        let mut names: Vec<String> = self
            .client
            .database(schema)
            .list_collection_names()
            .await
            .map_err(|e| self.error(&format!("listing collections of {schema}"), &e))?
            .into_iter()
            .filter(|name| !name.starts_with("system."))
            .collect();
        names.sort();
        Ok(names)
    }

    async fn open_table(
        &self,
        schema: &str,
        table: &str,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        if !self.collection_exists(schema, table).await? {
            return Ok(None);
        }
        let declared = self
            .options
            .schemas
            .get(&format!("{schema}.{table}"))
            .or_else(|| self.options.schemas.get(table));
        let columns = match declared {
            Some(declared) => declared.clone(),
            None => {
                let sample: Vec<Document> = self
                    .collection::<Document>(schema, table)
                    .aggregate([doc! { "$sample": { "size": self.options.sample_size as i64 } }])
                    .await
                    .map_err(|e| self.error(&format!("sampling {schema}.{table}"), &e))?
                    .try_collect()
                    .await
                    .map_err(|e| self.error(&format!("sampling {schema}.{table}"), &e))?;
                crate::schema::infer(&sample, self.options.max_depth)
            }
        };
        // Only a hint for the planner: an error here must not hide the table.
        let row_estimate = self
            .collection::<Document>(schema, table)
            .estimated_document_count()
            .await
            .ok();
        let mut opened = MongoTable::new(Arc::new(self.clone()), schema, table, columns);
        opened.row_estimate = row_estimate;
        Ok(Some(Arc::new(opened)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_password_to_scrub() {
        assert_eq!(
            password_of("mongodb://app:s%40cret@host:27017/db?x=1"),
            vec!["s%40cret".to_string(), "s@cret".to_string()]
        );
        assert!(password_of("mongodb://host:27017/").is_empty());
        assert!(password_of("mongodb://user@host/").is_empty());
    }
}
