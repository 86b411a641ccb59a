//! A SQL session over the engine, independent of any wire protocol.
//!
//! The pgwire server keeps one [`Session`] per connection and `koios query`
//! uses one for its single statement. A session parses PostgreSQL-dialect SQL
//! (plus Koios's own commands such as `REFRESH SOURCE name`), answers the
//! session commands PostgreSQL clients send (`BEGIN`, `SET`, `SHOW` …) and
//! hands everything else to DataFusion.

//!
//! * [`statement`]: query strings into statements and session commands.
//! * [`prepare`]: planning a statement.
//! * [`execute`]: running plans, with the session's plan cache.
//! * [`commands`]: the session commands.
//! * [`transaction`]: the session's transaction block.

mod commands;
mod execute;
mod prepare;
mod statement;
mod transaction;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::Result;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::SessionState;
use datafusion::prelude::SessionContext;

use crate::engine::Engine;
use crate::engine::activity::{Listed, SessionActivity, SessionInfo};
use crate::engine::extension::SessionIdentity;
use crate::engine::plancache::PlanCache;
use crate::engine::search_path::{SEARCH_PATH_PREFIX, SEARCH_PATH_SEPARATOR, search_path};
use crate::engine::settings::{READ_ONLY_SETTINGS, Settings};
use koios_connector::transaction::TransactionBlock;

pub use execute::Output;
pub use prepare::Prepared;
pub use statement::{Command, KoiosStatement, parse_sql, parse_with};

/// One client's session.
pub struct Session {
    engine: Arc<Engine>,
    ctx: SessionContext,
    database: String,
    /// The connected user (source statements check their rights).
    user: String,
    settings: Arc<Mutex<Settings>>,
    /// Open cursors (`DECLARE … CURSOR`), by name.
    cursors: tokio::sync::Mutex<HashMap<String, Cursor>>,
    /// Physical plans of the read-only queries this session ran.
    plans: Mutex<PlanCache>,
    /// A copy of the session's DataFusion state that statements are planned
    /// on, taken once instead of per statement (a copy holds every function
    /// registry); dropped with the plan cache whenever the state changes.
    planning: tokio::sync::Mutex<Option<SessionState>>,
    /// What this session is running (see [`crate::engine::activity`]).
    activity: Arc<SessionActivity>,
    /// Its `BEGIN … COMMIT` (in the context's configuration too, where the
    /// connectors' plan nodes find it).
    transaction: Arc<TransactionBlock>,
    /// Warnings for the client (see [`crate::engine::notices`]).
    notices: Arc<crate::engine::notices::Notices>,
    /// Its entry in the engine's list of sessions, while it lives; `None`
    /// for a session no client connected (`koios query`).
    _listed: Option<Listed>,
}

/// An open cursor: the rest of its query's rows.
struct Cursor {
    schema: SchemaRef,
    stream: SendableRecordBatchStream,
    /// Rows read from the stream but not fetched yet.
    pending: Option<RecordBatch>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session whose unqualified names resolve in `database` (a catalog).
    pub fn new(engine: Arc<Engine>, database: &str) -> Self {
        Self::for_user(engine, database, "koios")
    }

    /// A session of `user` (shown by `current_user` and `pg_roles`), not
    /// listed among the engine's sessions.
    pub fn for_user(engine: Arc<Engine>, database: &str, user: &str) -> Self {
        Self::open(
            engine,
            SessionInfo {
                pid: 0,
                user: user.to_string(),
                database: database.to_string(),
                client_addr: None,
            },
            false,
        )
    }

    /// The session of a connected client, listed among the engine's
    /// sessions (`koios.system.sessions`, `pg_stat_activity`) until dropped.
    pub fn for_client(engine: Arc<Engine>, client: SessionInfo) -> Self {
        Self::open(engine, client, true)
    }

    fn open(engine: Arc<Engine>, client: SessionInfo, listed: bool) -> Self {
        let settings = Arc::new(Mutex::new(Settings::default()));
        let (database, user) = (client.database.clone(), client.user.clone());
        // Without users everyone connects as the operator.
        let is_admin = engine.is_admin(&user);
        let activity = SessionActivity::new(client, Arc::clone(&settings));
        let listed = listed.then(|| engine.activity().register(&activity));
        let identity = SessionIdentity {
            database: database.clone(),
            user,
            settings: Arc::clone(&settings),
            is_admin,
            activity: Arc::clone(&activity),
            sessions: Arc::clone(engine.activity()),
            notices: Default::default(),
        };
        let transaction = Arc::new(TransactionBlock::new());
        let ctx = engine.new_context(&identity, Some(&transaction));
        engine.extension().register_functions(&ctx, &identity);
        Self {
            ctx,
            database,
            user: identity.user.clone(),
            settings,
            cursors: Default::default(),
            plans: Mutex::new(PlanCache::new(engine.capabilities().clone())),
            planning: Default::default(),
            activity,
            transaction,
            notices: Arc::clone(&identity.notices),
            _listed: listed,
            engine,
        }
    }

    /// The warnings and notices the last statements left for the client.
    pub fn take_notices(&self) -> Vec<(crate::engine::notices::Severity, String)> {
        self.notices.take()
    }

    /// What this session is running.
    pub fn activity(&self) -> &Arc<SessionActivity> {
        &self.activity
    }

    /// The engine this session runs on.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Splits a query string into statements (the front end may rewrite
    /// it first; see [`parse_with`]).
    pub fn parse(&self, sql: &str) -> Result<Vec<KoiosStatement>> {
        parse_with(self.engine.extension().as_ref(), sql)
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// A snapshot of the session parameters.
    pub fn settings(&self) -> Settings {
        self.settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads the session parameters without copying them (on every query).
    pub fn with_settings<R>(&self, read: impl FnOnce(&Settings) -> R) -> R {
        read(&self.settings.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Sets a parameter the client sent at connection start (e.g. `application_name`).
    pub fn set_startup_parameter(&self, name: &str, value: &str) {
        let key = name.to_ascii_lowercase();
        let mut settings = self.settings.lock().unwrap_or_else(|p| p.into_inner());
        if settings.values.contains_key(&key) && !READ_ONLY_SETTINGS.contains(&key.as_str()) {
            settings.values.insert(key, value.to_string());
        }
    }

    /// The row type of an open cursor.
    pub async fn cursor_schema(&self, name: &str) -> Option<SchemaRef> {
        self.cursors
            .lock()
            .await
            .get(name)
            .map(|c| Arc::clone(&c.schema))
    }

    /// Makes unqualified names resolve in the first schema of `search_path`
    /// that exists in the session's database (PostgreSQL skips missing ones).
    fn follow_search_path(&self) {
        let path = search_path(&self.settings());
        let catalog = self.ctx.catalog(&self.database);
        let existing: Vec<String> = path
            .into_iter()
            .filter(|schema| {
                catalog
                    .as_ref()
                    .is_some_and(|c| schema != "pg_catalog" && c.schema_names().contains(schema))
            })
            .collect();
        let first = existing
            .first()
            .cloned()
            .unwrap_or_else(|| crate::engine::DEFAULT_SCHEMA.to_string());
        self.settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .current_schema = Some(first.clone());
        // Several schemas: unqualified names are looked up in each, in order.
        let schema = if existing.len() > 1 {
            format!(
                "{}{}",
                SEARCH_PATH_PREFIX,
                existing.join(&SEARCH_PATH_SEPARATOR.to_string())
            )
        } else {
            first
        };
        let state = self.ctx.state_ref();
        let mut state = state.write();
        state.config_mut().options_mut().catalog.default_schema = schema;
    }
}
