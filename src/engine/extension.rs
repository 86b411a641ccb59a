//! What a front end adds to every session the engine makes.
//!
//! The engine plans and runs SQL; how a family of clients expects to see it
//! — PostgreSQL's system catalogs, its functions, its array literals, the
//! catalog queries its drivers send — belongs to the front end that speaks
//! to those clients. The front end hands the engine one
//! [`SessionExtension`] at start, so the engine never names it.

use std::fmt;
use std::sync::{Arc, Mutex};

use datafusion::catalog::CatalogProviderList;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;

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
}

/// The hooks a front end installs in every session.
pub trait SessionExtension: Send + Sync + fmt::Debug {
    /// Wraps the engine's catalogs as this session sees them (for example,
    /// to give every catalog system schemas).
    fn catalog_list(
        &self,
        catalogs: Arc<dyn CatalogProviderList>,
        session: &SessionIdentity,
    ) -> Arc<dyn CatalogProviderList>;

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
