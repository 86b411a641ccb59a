//! The engine's shared state: one catalog of every source, and the
//! DataFusion session contexts made over it.
//!
//! The engine is front-end independent (ROAPI's columnq split): the pgwire
//! server and `koios query` both ask it for sessions. Each source is attached
//! as a DataFusion catalog named after the source; the built-in catalog
//! `koios` holds views, `startup_sql` objects and local tables. Sources come
//! from the configuration file and from Koios's metadata store (created by
//! `CREATE SOURCE`); how they are attached, watched and changed is in
//! [`crate::engine::sources`]. A source that cannot be attached is marked
//! down: queries touching it get a clear error, everything else keeps
//! working, and it is attached as soon as it answers.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemorySchemaProvider,
};
use datafusion::error::DataFusionError;
use datafusion::execution::context::QueryPlanner;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use koios_connector::{Capabilities, Connector};

use crate::engine::activity::ActivityRegistry;
use crate::engine::catalog_list::CatalogMap;
use crate::engine::config::{Config, ServerConfig};
use crate::engine::error::{KoiosError, Result};
use crate::engine::extension::{SessionExtension, SessionIdentity};
use crate::engine::metadata::{self, MetadataStore};
use crate::engine::metrics::EngineMetrics;
use crate::engine::physical_planner::ConnectorQueryPlanner;
use crate::engine::planner::{CooperativeJoins, ScalarMaxAsWindow, SourceJoinGrouping};
use crate::engine::session_catalog::SessionCatalogList;
use crate::engine::sources::{SourceEntry, SourceOrigin, health};

/// Name of the built-in catalog.
pub const KOIOS_CATALOG: &str = "koios";
/// Default schema of every catalog.
pub const DEFAULT_SCHEMA: &str = "public";

/// Everything sessions share.
pub struct Engine {
    pub(crate) runtime: Arc<RuntimeEnv>,
    pub(crate) catalogs: Arc<CatalogMap>,
    /// Every source by name (see [`crate::engine::sources`]).
    pub(crate) sources: RwLock<BTreeMap<String, SourceEntry>>,
    pub(crate) connectors: BTreeMap<&'static str, Arc<dyn Connector>>,
    /// Logical tables by `schema.table` (see [`crate::engine::logical`]).
    pub(crate) logical: RwLock<BTreeMap<String, Arc<crate::engine::logical::LogicalTable>>>,
    /// Where sources created by SQL are kept.
    pub(crate) store: Arc<dyn MetadataStore>,
    /// Background jobs (see [`crate::engine::jobs`]).
    pub(crate) jobs: Arc<crate::engine::jobs::Jobs>,
    /// Source statements and re-attachments run one at a time.
    pub(crate) ddl: tokio::sync::Mutex<()>,
    pub(crate) entry_ids: std::sync::atomic::AtomicU64,
    /// When the engine started (`koios status` shows the uptime).
    pub started_at: std::time::SystemTime,
    /// The same connectors, asked about their tables and plan nodes.
    capabilities: Capabilities,
    /// What the front end adds to every session.
    extension: Arc<dyn SessionExtension>,
    /// DataFusion's physical planner with the connectors' extension planners.
    query_planner: Arc<ConnectorQueryPlanner>,
    pub(crate) server: ServerConfig,
    /// Bumped whenever what a name resolves to may have changed (a source
    /// attached or refreshed, DDL run by any session): sessions drop the
    /// plans they cached before it.
    catalog_generation: std::sync::atomic::AtomicU64,
    /// Every client session and what it runs.
    activity: Arc<ActivityRegistry>,
    /// Counters and gauges of this engine, for `/metrics`.
    metrics: Arc<EngineMetrics>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("catalogs", &self.catalogs.catalog_names())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// What the connectors of this build say of their tables and nodes.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// Builds the engine over `connectors`, with `extension` in every
    /// session: opens the metadata store, attaches every source of the
    /// configuration and of the store (concurrently; a failing one is
    /// marked down), starts the health checks and runs `startup_sql`.
    pub async fn start_with(
        config: &Config,
        connectors: Vec<Arc<dyn Connector>>,
        extension: Arc<dyn SessionExtension>,
    ) -> Result<Arc<Engine>> {
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(limit) = config.server.memory_limit {
            runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(limit)));
        }
        let runtime = runtime.build_arc()?;

        let catalogs = Arc::new(CatalogMap::default());
        let koios = MemoryCatalogProvider::new();
        let koios_public = Arc::new(MemorySchemaProvider::new());
        koios.register_schema(
            DEFAULT_SCHEMA,
            Arc::clone(&koios_public) as Arc<dyn datafusion::catalog::SchemaProvider>,
        )?;
        catalogs.register_catalog(KOIOS_CATALOG.to_string(), Arc::new(koios));

        let connectors: BTreeMap<&'static str, Arc<dyn Connector>> =
            connectors.into_iter().map(|c| (c.kind(), c)).collect();
        for spec in &config.sources {
            let Some(connector) = connectors.get(spec.kind.as_str()) else {
                return Err(KoiosError::Config(format!(
                    "{}: source '{}': unknown kind '{}'; this build knows: {}",
                    config
                        .origin
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "configuration".into()),
                    spec.name,
                    spec.kind,
                    connectors.keys().copied().collect::<Vec<_>>().join(", ")
                )));
            };
            // A mistyped option stops the start (naming file, line and key)
            // instead of leaving the source unavailable.
            connector.check_options(spec).map_err(|e| {
                KoiosError::Config(match e {
                    DataFusionError::Configuration(message) => message,
                    other => other.to_string(),
                })
            })?;
        }

        let store = metadata::open(&config.server.metadata).await?;
        let stored = store.sources().await?;
        let jobs = Arc::new(crate::engine::jobs::Jobs::load(Arc::clone(&store)).await?);

        let capabilities = Capabilities::new(connectors.values().cloned());
        let engine = Arc::new(Engine {
            runtime,
            catalogs,
            sources: RwLock::new(BTreeMap::new()),
            logical: RwLock::new(BTreeMap::new()),
            store,
            jobs,
            ddl: Default::default(),
            entry_ids: Default::default(),
            started_at: std::time::SystemTime::now(),
            query_planner: Arc::new(ConnectorQueryPlanner::new(
                connectors
                    .values()
                    .flat_map(|c| c.extension_planners())
                    .chain(std::iter::once(Arc::new(
                        crate::engine::remote_ddl::write_node::RemoteWritePlanner::new(
                            capabilities.clone(),
                        ),
                    )
                        as Arc<
                            dyn datafusion::physical_planner::ExtensionPlanner + Send + Sync,
                        >))
                    .chain(std::iter::once(
                        Arc::new(crate::engine::logical::gate::MemberGatePlanner)
                            as Arc<
                                dyn datafusion::physical_planner::ExtensionPlanner + Send + Sync,
                            >,
                    ))
                    .chain(std::iter::once(Arc::new(
                        crate::engine::logical::mirror::MirrorReadPlanner,
                    )
                        as Arc<
                            dyn datafusion::physical_planner::ExtensionPlanner + Send + Sync,
                        >))
                    .collect(),
            )),
            capabilities,
            connectors,
            extension,
            server: config.server.clone(),
            catalog_generation: Default::default(),
            activity: Default::default(),
            metrics: Arc::new(EngineMetrics::new()),
        });
        engine.metrics.spawn_upkeep();
        // Koios's own tables (`koios.system.*`), built from the engine at
        // each scan.
        if let Some(koios) = engine.catalogs.catalog(KOIOS_CATALOG) {
            // `koios.public` serves the logical tables beside in-memory ones.
            koios.register_schema(
                DEFAULT_SCHEMA,
                Arc::new(crate::engine::logical::provider::KoiosSchema::new(
                    koios_public,
                    Arc::downgrade(&engine),
                    DEFAULT_SCHEMA,
                )),
            )?;
            koios.register_schema(
                crate::engine::system::SCHEMA,
                Arc::new(crate::engine::system::SystemSchema::new(Arc::downgrade(
                    &engine,
                ))),
            )?;
        }

        let file = config
            .origin
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "(the embedded default)".into());
        let from_file = config.sources.iter().map(|spec| {
            let engine = Arc::clone(&engine);
            let origin = SourceOrigin::File(file.clone());
            async move {
                engine.attach_entry(spec.clone(), origin, None).await;
            }
        });
        futures::future::join_all(from_file).await;
        let mut from_store = Vec::new();
        for source in stored {
            if config.sources.iter().any(|s| s.name == source.name) {
                // The file is the operator's word: its source wins.
                tracing::warn!(
                    source = %source.name,
                    "a source created by SQL has the name of one in the configuration file; \
                     the file's is used (DROP SOURCE cannot remove it: rename one of them)"
                );
                continue;
            }
            let engine = Arc::clone(&engine);
            from_store.push(async move { engine.attach_stored(source).await });
        }
        futures::future::join_all(from_store).await;
        engine.load_logical_tables().await?;
        engine.declare_tables(&config.tables).await?;
        engine.restore_mirrors().await?;
        health::spawn(&engine, config.server.health_interval);
        crate::engine::logical::catchup::spawn(&engine, config.server.health_interval);
        engine.resume_migrations();
        engine.resume_rebalances();

        engine.run_startup_sql(&config.startup_sql).await?;
        Ok(engine)
    }

    /// Background jobs, running and finished.
    pub fn jobs(&self) -> &Arc<crate::engine::jobs::Jobs> {
        &self.jobs
    }

    /// Every client session and what it runs.
    pub fn activity(&self) -> &Arc<ActivityRegistry> {
        &self.activity
    }

    /// The current catalog generation (see [`Engine::catalog_changed`]).
    pub fn catalog_generation(&self) -> u64 {
        self.catalog_generation
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Records that tables, views or sources may have changed, so that no
    /// session runs a plan cached before.
    pub fn catalog_changed(&self) {
        self.catalog_generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Whether `name` is a catalog clients may connect to as a database.
    pub fn has_database(&self, name: &str) -> bool {
        self.catalogs.catalog(name).is_some()
    }

    /// Every database (catalog) name.
    pub fn database_names(&self) -> Vec<String> {
        self.catalogs.catalog_names()
    }

    /// What the front end adds to every session.
    pub fn extension(&self) -> &Arc<dyn SessionExtension> {
        &self.extension
    }

    /// This engine's metrics (see [`crate::engine::metrics`]).
    pub fn metrics(&self) -> &Arc<EngineMetrics> {
        &self.metrics
    }

    /// The runtime every session's queries run with (memory pool, disk).
    pub fn runtime(&self) -> &Arc<RuntimeEnv> {
        &self.runtime
    }

    /// The server settings the engine was built with.
    pub fn server_config(&self) -> &ServerConfig {
        &self.server
    }

    /// A new DataFusion session whose unqualified names resolve in the
    /// identity's database; the front end's extension sees the identity
    /// (its system tables show the user and the settings).
    /// A session's DataFusion context; `block` is its transaction block,
    /// which connectors' plan nodes find in the configuration.
    pub fn new_context(
        &self,
        identity: &SessionIdentity,
        block: Option<&Arc<koios_connector::transaction::TransactionBlock>>,
    ) -> SessionContext {
        let database = identity.database.as_str();
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(database, DEFAULT_SCHEMA)
            // The shared catalog list already holds `koios`; letting each session
            // create its default catalog would replace it.
            .with_create_default_catalog_and_schema(false)
            // The front end brings its own information_schema (PostgreSQL's
            // columns, in every catalog).
            .with_information_schema(false)
            .with_batch_size(self.server.batch_size);
        if let Some(block) = block {
            config = config.with_extension(Arc::clone(block));
        }
        let options = config.options_mut();
        options.sql_parser.dialect = datafusion::config::Dialect::PostgreSQL;
        // PostgreSQL reads `1.5` as an exact numeric, not a float.
        options.sql_parser.parse_float_as_decimal = true;
        // `timestamptz` (and now()) carry a zone, as in PostgreSQL; without one
        // DataFusion 55 plans `TIMESTAMP WITH TIME ZONE` as a naive timestamp.
        options.execution.time_zone = Some("UTC".into());
        // A hash join's small side hands its keys to the other side's scan as
        // an IN list (remote scans put it in their SQL) up to this many keys.
        options
            .optimizer
            .hash_join_inlist_pushdown_max_distinct_values = self.server.dynamic_filter_max_keys;
        options.optimizer.hash_join_inlist_pushdown_max_size = options
            .optimizer
            .hash_join_inlist_pushdown_max_size
            .max(1 << 20);
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(Arc::clone(&self.runtime))
            .with_catalog_list(Arc::new(SessionCatalogList::new(
                Arc::clone(&self.catalogs) as Arc<dyn CatalogProviderList>,
                self.extension.system_schemas(
                    Arc::clone(&self.catalogs) as Arc<dyn CatalogProviderList>,
                    identity,
                ),
            )))
            .with_default_features()
            // Plans the remote subqueries the connectors' rules create.
            .with_query_planner(
                Arc::clone(&self.query_planner) as Arc<dyn QueryPlanner + Send + Sync>
            )
            // Before the connectors' pushdown rules, which then find the
            // grouped joins.
            .with_optimizer_rule(Arc::new(SourceJoinGrouping::new(self.capabilities.clone())))
            .with_optimizer_rule(Arc::new(ScalarMaxAsWindow))
            // Striped tables read through their members, before the
            // connectors' rules push into each member's branch.
            .with_optimizer_rule(Arc::new(
                crate::engine::logical::expand::ExpandLogicalTables::new(
                    Arc::clone(&identity.settings),
                    Arc::clone(&identity.notices),
                ),
            ))
            // Operators above a mirrored read go into each copy's branch.
            .with_optimizer_rule(Arc::new(crate::engine::logical::mirror::MirrorPushdown))
            .with_optimizer_rule(Arc::new(crate::engine::union_pushdown::UnionPushdown))
            // Joins that emit from buffered input yield (a cancel can stop them).
            .with_physical_optimizer_rule(Arc::new(CooperativeJoins));
        state = self.extension.configure_state(state);
        for connector in self.connectors.values() {
            for rule in connector.optimizer_rules() {
                state = state.with_optimizer_rule(rule);
            }
            for rule in connector.physical_optimizer_rules() {
                state = state.with_physical_optimizer_rule(rule);
            }
        }
        let state = state.build();
        SessionContext::new_with_state(state)
    }

    /// A session of Koios's own (startup SQL, background work on sources):
    /// the administrator of the `koios` database.
    pub(crate) fn internal_context(&self) -> SessionContext {
        let settings: Arc<std::sync::Mutex<crate::engine::settings::Settings>> = Default::default();
        let identity = SessionIdentity {
            database: KOIOS_CATALOG.into(),
            user: "koios".into(),
            settings: Arc::clone(&settings),
            is_admin: true,
            activity: crate::engine::activity::SessionActivity::new(
                crate::engine::activity::SessionInfo {
                    pid: 0,
                    user: "koios".into(),
                    database: KOIOS_CATALOG.into(),
                    client_addr: None,
                },
                settings,
            ),
            sessions: Arc::clone(&self.activity),
            notices: Default::default(),
        };
        self.new_context(&identity, None)
    }

    async fn run_startup_sql(&self, statements: &[String]) -> Result<()> {
        if statements.is_empty() {
            return Ok(());
        }
        let ctx = self.internal_context();
        let degraded = self
            .read_sources()
            .values()
            .any(|entry| entry.attached.is_none());
        for sql in statements {
            let result = async { ctx.sql(sql).await?.collect().await }.await;
            if let Err(e) = result {
                let message = format!("startup_sql statement failed: {sql}: {e}");
                if degraded {
                    // Most likely the statement needs a source that is down:
                    // keep serving everything else.
                    tracing::error!("{message} (continuing: some sources are unavailable)");
                } else {
                    return Err(KoiosError::Config(message));
                }
            }
        }
        Ok(())
    }
}
