//! The composition root: the connectors compiled into this build and the
//! front end every session gets. The one place that names connector crates.

use std::sync::Arc;

use koios_connector::Connector;

use crate::engine::Engine;
use crate::engine::config::Config;
use crate::engine::error::Result;
use crate::pg::PgExtension;

/// The connectors compiled into this build.
pub fn builtin_connectors() -> Vec<Arc<dyn Connector>> {
    vec![
        Arc::new(koios_connector_files::FilesConnector),
        Arc::new(koios_connector_demo::DemoConnector),
        Arc::new(koios_connector_postgres::PostgresConnector),
        Arc::new(koios_connector_mysql::MySqlConnector),
        Arc::new(koios_connector_mongodb::MongoConnector),
    ]
}

impl Engine {
    /// The engine of this build: every built-in connector, and PostgreSQL's
    /// face on every session (see [`Engine::start_with`]).
    pub async fn start(config: &Config) -> Result<Arc<Engine>> {
        Engine::start_with(config, builtin_connectors(), Arc::new(PgExtension)).await
    }
}
