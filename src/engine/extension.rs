//! What a front end adds to every session the engine makes.
//!
//! The engine plans and runs SQL; how a family of clients expects to see it
//! — PostgreSQL's system catalogs, its functions, its array literals, the
//! catalog queries its drivers send — belongs to the front end that speaks
//! to those clients. The front end hands the engine one
//! [`SessionExtension`] at start, so the engine never names it.

use std::fmt;
use std::sync::{Arc, Mutex};

use datafusion::catalog::{CatalogProviderList, SchemaProvider};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;

use crate::engine::activity::{ActivityRegistry, SessionActivity};
use crate::engine::settings::Settings;

/// Who a session is: what a front end's catalog tables and functions show.
#[derive(Debug, Clone)]
pub struct SessionIdentity {
    /// The catalog unqualified names resolve in.
    pub database: String,
    /// The connected user.
    pub user: String,
    /// The session's parameters, live (a `SET` is seen at once).
    pub settings: Arc<Mutex<Settings>>,
    /// Whether the user has admin rights (`admin = true` in `[[user]]`;
    /// everyone when no users are configured).
    pub is_admin: bool,
    /// This session's activity (its backend pid).
    pub activity: Arc<SessionActivity>,
    /// Every session's activity (`pg_stat_activity`, `pg_cancel_backend`).
    pub sessions: Arc<ActivityRegistry>,
    /// Warnings for the client from the statement running now.
    pub notices: Arc<crate::engine::notices::Notices>,
}

/// Schemas a front end adds to every catalog of one session (PostgreSQL's
/// `pg_catalog` and `information_schema`).
pub trait SystemSchemas: Send + Sync + fmt::Debug {
    /// Their names; no user schema may take one.
    fn names(&self) -> &[&'static str];

    /// The system schema `name` of `database`.
    fn schema(&self, database: &str, name: &str) -> Option<Arc<dyn SchemaProvider>>;
}

/// The hooks a front end installs in every session.
pub trait SessionExtension: Send + Sync + fmt::Debug {
    /// The system schemas of a new session; `catalogs` are the engine's
    /// (what the system tables describe).
    fn system_schemas(
        &self,
        catalogs: Arc<dyn CatalogProviderList>,
        session: &SessionIdentity,
    ) -> Arc<dyn SystemSchemas>;

    /// Adds type planners and analyzer or optimizer rules to a session's
    /// state before it is built.
    fn configure_state(&self, state: SessionStateBuilder) -> SessionStateBuilder;

    /// Registers the front end's functions on a new session.
    fn register_functions(&self, ctx: &SessionContext, session: &SessionIdentity);

    /// Statements to plan instead of `sql` when the front end recognises a
    /// query its clients send that DataFusion cannot plan as written;
    /// `None` to parse `sql` as it is.
    fn rewrite_query(&self, sql: &str) -> Option<Vec<Statement>>;
}
