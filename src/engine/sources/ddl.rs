//! What the source statements do. Each one is checked first (name, kind,
//! options, `${VAR}`s, and by default a connection to the backend), then
//! written to the metadata store, and only then applied to the running
//! engine — so a statement that succeeded survives a restart, and one that
//! failed changed nothing. Statements run one at a time per server.

use std::time::SystemTime;

use datafusion::error::{DataFusionError, Result};
use koios_connector::{SourceSpec, SqlStateError, sql_err, sql_error};

use std::sync::Arc;

use koios_connector::Source;

use super::health::SourceHealth;
use super::statements::SourceCommand;
use super::{SourceEntry, SourceOrigin};
use crate::engine::Engine;
use crate::engine::KOIOS_CATALOG;
use crate::engine::config::{expand, expand_value, is_identifier, resolve_local_url};
use crate::engine::error::codes;
use crate::engine::metadata::StoredSource;

/// Options Koios reads itself instead of passing them to the connector.
const URL: &str = "url";
const VALIDATE: &str = "validate";

impl Engine {
    /// Runs a source statement other than `SHOW SOURCES` for `user`;
    /// returns the command tag.
    pub async fn run_source_command(&self, command: &SourceCommand, user: &str) -> Result<()> {
        if command.needs_admin() && !self.is_admin(user) {
            return sql_err!(
                codes::INSUFFICIENT_PRIVILEGE,
                "permission denied: only administrators may create, alter or drop sources \
                 (a [[user]] with admin = true)"
            );
        }
        match command {
            SourceCommand::Create {
                name,
                kind,
                options,
                if_not_exists,
            } => {
                self.create_source(name, kind, options, *if_not_exists)
                    .await
            }
            SourceCommand::Alter { name, options } => self.alter_source(name, options).await,
            SourceCommand::Drop { name, if_exists } => self.drop_source(name, *if_exists).await,
            SourceCommand::Refresh(name) => self.refresh_source(name).await,
            SourceCommand::Show => Ok(()),
        }
    }

    /// Whether `user` may manage sources: every user when no `[[user]]` is
    /// configured (password-less, loopback only), else those marked admin.
    pub fn is_admin(&self, user: &str) -> bool {
        self.server.users.is_empty() || self.server.users.iter().any(|u| u.name == user && u.admin)
    }

    async fn create_source(
        &self,
        name: &str,
        kind: &str,
        options: &[(String, toml::Value)],
        if_not_exists: bool,
    ) -> Result<()> {
        if !is_identifier(name) || name == KOIOS_CATALOG {
            return sql_err!(
                "42602",
                "invalid source name '{name}': a lower-case identifier ([a-z_][a-z0-9_]*) other than 'koios'"
            );
        }
        let mut options: Vec<(String, toml::Value)> = options.to_vec();
        let validate = take_validate(&mut options)?;
        let Some(position) = options.iter().position(|(k, _)| k == URL) else {
            return sql_err!(
                codes::SYNTAX_ERROR,
                "CREATE SOURCE {name} needs WITH (url = '…')"
            );
        };
        let toml::Value::String(url) = options.remove(position).1 else {
            return sql_err!(
                codes::INVALID_PARAMETER_VALUE,
                "option url must be a string"
            );
        };
        let stored = StoredSource {
            name: name.to_string(),
            kind: kind.to_string(),
            url,
            options: options.into_iter().collect(),
            created_at: chrono::DateTime::<chrono::Utc>::from(SystemTime::now())
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
        };

        let _ddl = self.ddl.lock().await;
        if let Some(existing) = self.read_sources().get(name) {
            if if_not_exists {
                return Ok(());
            }
            return sql_err!(
                codes::DUPLICATE_OBJECT,
                "source '{name}' already exists ({})",
                describe_origin(&existing.origin)
            );
        }
        let spec = self.checked_spec(&stored)?;
        let attached = match self.connect_source(&spec).await {
            Ok(source) => Some(source),
            Err(e) if validate => return Err(connect_error(name, e)),
            Err(e) => {
                tracing::warn!(source = %name, error = %e, "source created down (validate = false)");
                None
            }
        };
        self.store_and_install(stored, spec, attached, true).await?;
        tracing::info!(source = %name, %kind, "source created");
        Ok(())
    }

    async fn alter_source(&self, name: &str, options: &[(String, toml::Value)]) -> Result<()> {
        let mut options: Vec<(String, toml::Value)> = options.to_vec();
        let validate = take_validate(&mut options)?;
        let _ddl = self.ddl.lock().await;
        let entry = self.managed_entry(name, "altered")?;
        let Some(mut stored) = entry.stored.clone() else {
            return sql_err!(
                codes::INTERNAL_ERROR,
                "source '{name}' has no stored definition"
            );
        };
        for (key, value) in options {
            if key == URL {
                let toml::Value::String(url) = value else {
                    return sql_err!(
                        codes::INVALID_PARAMETER_VALUE,
                        "option url must be a string"
                    );
                };
                stored.url = url;
            } else {
                stored.options.insert(key, value);
            }
        }
        let spec = self.checked_spec(&stored)?;
        let attached = match self.connect_source(&spec).await {
            Ok(source) => Some(source),
            Err(e) if validate => return Err(connect_error(name, e)),
            Err(_) => None,
        };
        self.store_and_install(stored, spec, attached, false)
            .await?;
        tracing::info!(source = %name, "source altered");
        Ok(())
    }

    async fn drop_source(&self, name: &str, if_exists: bool) -> Result<()> {
        let _ddl = self.ddl.lock().await;
        if if_exists && !self.read_sources().contains_key(name) {
            return Ok(());
        }
        self.managed_entry(name, "dropped")?;
        self.store.delete_source(name).await?;
        if let Some(old) = self.uninstall(name).and_then(|e| e.attached) {
            old.close().await;
        }
        tracing::info!(source = %name, "source dropped");
        Ok(())
    }

    /// Writes `stored` to the store (a new source, or a change), then
    /// serves it; a failed write closes `attached` and changes nothing.
    async fn store_and_install(
        &self,
        stored: StoredSource,
        spec: SourceSpec,
        attached: Option<Arc<dyn Source>>,
        new: bool,
    ) -> Result<()> {
        let written = if new {
            self.store.insert_source(&stored).await
        } else {
            self.store.update_source(&stored).await
        };
        if let Err(e) = written {
            if let Some(source) = attached {
                source.close().await;
            }
            return Err(e);
        }
        let up = attached.is_some();
        let verb = if new { "created" } else { "altered" };
        let replaced = self.install(SourceEntry {
            health: Arc::new(SourceHealth::new(
                up,
                (!up).then(|| format!("not connected yet ({verb} with validate = false)")),
            )),
            spec,
            origin: SourceOrigin::Sql,
            stored: Some(stored),
            attached,
            id: self.next_entry_id(),
        });
        if let Some(old) = replaced {
            old.close().await;
        }
        Ok(())
    }

    /// The entry of a source created by SQL; a clear error for a missing
    /// one or one from the configuration file.
    fn managed_entry(&self, name: &str, verb: &str) -> Result<SourceEntry> {
        let Some(entry) = self.read_sources().get(name).cloned() else {
            return sql_err!(codes::UNDEFINED_OBJECT, "source '{name}' does not exist");
        };
        if let SourceOrigin::File(file) = &entry.origin {
            return Err(sql_error!(
                codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                "source '{name}' comes from the configuration file {file} and cannot be {verb} \
                 by SQL; change it in the file and restart Koios"
            ));
        }
        Ok(entry)
    }

    /// The spec a stored source connects with: `${VAR}`s expanded from the
    /// environment now, a local path made absolute, options checked by the
    /// connector.
    pub(crate) fn checked_spec(&self, stored: &StoredSource) -> Result<SourceSpec> {
        let Some(connector) = self.connectors.get(stored.kind.as_str()) else {
            return Err(self.unknown_kind(&stored.kind));
        };
        let spec = expanded_spec(stored)?;
        connector.check_options(&spec).map_err(|e| match e {
            DataFusionError::Configuration(message) => {
                sql_error!(codes::INVALID_PARAMETER_VALUE, "{message}")
            }
            other => other,
        })?;
        Ok(spec)
    }

    /// Brings the running engine in line with the store: sources another
    /// server sharing it created, changed or dropped.
    pub(crate) async fn reconcile_with_store(&self) {
        let stored = match self.store.sources().await {
            Ok(stored) => stored,
            Err(e) => {
                tracing::warn!(store = %self.store.location(), error = %e, "metadata store unreadable");
                return;
            }
        };
        let _ddl = self.ddl.lock().await;
        let current: Vec<(String, Option<StoredSource>)> = self
            .read_sources()
            .iter()
            .filter(|(_, e)| e.origin == SourceOrigin::Sql)
            .map(|(name, e)| (name.clone(), e.stored.clone()))
            .collect();
        for (name, known) in &current {
            match stored.iter().find(|s| &s.name == name) {
                None => {
                    tracing::info!(source = %name, "source dropped by another server");
                    if let Some(old) = self.uninstall(name).and_then(|e| e.attached) {
                        old.close().await;
                    }
                }
                Some(s) if Some(s) != known.as_ref() => {
                    tracing::info!(source = %name, "source changed by another server");
                    self.attach_stored(s.clone()).await;
                }
                Some(_) => {}
            }
        }
        for s in stored {
            if !self.read_sources().contains_key(&s.name) {
                tracing::info!(source = %s.name, "source created by another server");
                self.attach_stored(s).await;
            }
        }
    }

    /// Attaches a stored source (marked down, with the reason, if its
    /// options no longer check or it cannot connect).
    pub(crate) async fn attach_stored(&self, stored: StoredSource) {
        match self.checked_spec(&stored) {
            Ok(spec) => {
                self.attach_entry(spec, SourceOrigin::Sql, Some(stored))
                    .await;
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::error!(source = %stored.name, %reason, "stored source cannot be used");
                let spec = SourceSpec {
                    name: stored.name.clone(),
                    kind: stored.kind.clone(),
                    ..Default::default()
                };
                self.install(SourceEntry {
                    health: Arc::new(SourceHealth::new(false, Some(reason))),
                    spec,
                    origin: SourceOrigin::Sql,
                    stored: Some(stored),
                    attached: None,
                    id: self.next_entry_id(),
                });
            }
        }
    }
}

/// `validate = true|false` (default true), removed from the options.
fn take_validate(options: &mut Vec<(String, toml::Value)>) -> Result<bool> {
    let Some(position) = options.iter().position(|(k, _)| k == VALIDATE) else {
        return Ok(true);
    };
    match options.remove(position).1 {
        toml::Value::Boolean(b) => Ok(b),
        _ => sql_err!(
            codes::INVALID_PARAMETER_VALUE,
            "option validate must be true or false"
        ),
    }
}

fn expanded_spec(stored: &StoredSource) -> Result<SourceSpec> {
    let env = |name: &str| std::env::var(name).ok();
    let invalid = |key: &str, message: String| {
        sql_error!(
            codes::INVALID_PARAMETER_VALUE,
            "source '{}': option {key}: {message}",
            stored.name
        )
    };
    let url = expand(&stored.url, &env).map_err(|m| invalid(URL, m))?;
    let mut options = std::collections::BTreeMap::new();
    for (key, value) in &stored.options {
        options.insert(
            key.clone(),
            expand_value(value.clone(), &env).map_err(|m| invalid(key, m))?,
        );
    }
    let base = std::env::current_dir().unwrap_or_default();
    Ok(SourceSpec {
        name: stored.name.clone(),
        kind: stored.kind.clone(),
        url: resolve_local_url(&url, &base),
        options,
        option_lines: Default::default(),
    })
}

/// A failed connection of a new or altered source: the backend's error
/// (with its SQLSTATE when it has one, 08001 otherwise).
fn connect_error(name: &str, e: DataFusionError) -> DataFusionError {
    let has_code = matches!(&e, DataFusionError::External(inner)
        if inner.downcast_ref::<SqlStateError>().is_some()
            || inner.downcast_ref::<koios_connector::RemoteError>().is_some());
    if has_code {
        return e;
    }
    sql_error!(
        codes::UNABLE_TO_CONNECT,
        "cannot connect to source '{name}': {e} (WITH (validate = false) keeps it anyway, marked down)"
    )
}

fn describe_origin(origin: &SourceOrigin) -> String {
    match origin {
        SourceOrigin::File(file) => format!("from the configuration file {file}"),
        SourceOrigin::Sql => "created by SQL".into(),
    }
}
