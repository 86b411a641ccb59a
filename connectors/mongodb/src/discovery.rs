//! Connecting to MongoDB and finding its databases and collections; a
//! collection's columns come from the configuration or from a `$sample`.

use std::time::Duration;

use datafusion::error::Result;
use koios_connector::RemoteError;
use mongodb::bson::doc;
use mongodb::options::ClientOptions;
use mongodb::{Client, Collection};

use crate::options::MongoOptions;

/// Databases MongoDB keeps for itself.
pub(crate) const SYSTEM_DATABASES: &[&str] = &["admin", "local", "config"];

/// One attached MongoDB deployment (cheap to clone: the driver's client is shared).
#[derive(Clone)]
pub struct MongoDiscovery {
    pub(crate) source: String,
    pub(crate) client: Client,
    pub(crate) options: MongoOptions,
    pub(crate) default_database: Option<String>,
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
