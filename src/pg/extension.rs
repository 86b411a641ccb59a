//! What the PostgreSQL front end adds to every session: system catalogs,
//! functions, `::regclass`-style casts, array literals and the rewrites of
//! client catalog queries.

use std::sync::Arc;

use datafusion::catalog::CatalogProviderList;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::Statement;

use crate::engine::extension::{SessionExtension, SessionIdentity, SystemSchemas};
use crate::pg::catalog::{PgSystemSchemas, SystemContext, rewrite_catalog_query};
use crate::pg::types::arrays::ArrayLiteralCasts;

/// The PostgreSQL face of every session.
#[derive(Debug, Default)]
pub struct PgExtension;

impl SessionExtension for PgExtension {
    fn system_schemas(
        &self,
        catalogs: Arc<dyn CatalogProviderList>,
        session: &SessionIdentity,
    ) -> Arc<dyn SystemSchemas> {
        Arc::new(PgSystemSchemas::new(SystemContext {
            catalogs,
            settings: Arc::clone(&session.settings),
            user: session.user.clone(),
            sessions: Arc::clone(&session.sessions),
        }))
    }

    fn configure_state(&self, state: SessionStateBuilder) -> SessionStateBuilder {
        state
            // `::regclass`, `::regtype`, `::oid` … parse (as int4 OIDs).
            .with_type_planner(Arc::new(
                datafusion_pg_catalog::pg_catalog::oid_type_planner::PgOidTypePlanner,
            ))
            // `'{1,2}'::int[]` is an array literal, as in PostgreSQL.
            .with_analyzer_rule(Arc::new(ArrayLiteralCasts))
            // `LIKE $1 ESCAPE '/'`, as SQLAlchemy sends it.
            .with_analyzer_rule(Arc::new(crate::pg::like_escape::LikeEscapes))
            // `float8_column < 5000.5` compares as float8, not as a decimal.
            .with_analyzer_rule(Arc::new(crate::pg::float_comparisons::FloatComparisons))
    }

    fn register_functions(&self, ctx: &SessionContext, session: &SessionIdentity) {
        crate::pg::functions::register(
            ctx,
            &session.database,
            &session.user,
            Arc::clone(&session.settings),
        );
        crate::pg::functions::register_activity(ctx, session);
    }

    fn rewrite_query(&self, sql: &str) -> Option<Vec<Statement>> {
        rewrite_catalog_query(sql)
    }
}
