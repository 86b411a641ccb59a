//! Whole-subplan pushdown: a part of the logical plan that reads only tables
//! of one SQL source — joins, filters, aggregates, DISTINCT, ORDER BY + LIMIT —
//! is unparsed into one query in that source's dialect and replaced by a
//! single remote scan.
//!
//! [`SubplanPushdown`] is an optimizer rule that runs after DataFusion's own
//! (so filters, projections and limits are already pushed into the scans).
//! It walks the plan bottom-up and accepts a node only when the server would
//! compute exactly what DataFusion computes: every expression is checked
//! against the backend's [`Semantics`] for the values involved (collations,
//! float rules, NULL ordering), the aggregate functions whose results match
//! (count, sum, min, max; avg over floats), and exact casts. Whatever is not
//! accepted stays in DataFusion, so pushdown never changes an answer; if the
//! unparser cannot write a part, that part stays local too.
//!
//! The replaced part becomes a [`RemoteSubplanNode`] (shown by `EXPLAIN` with
//! its SQL), planned by [`SubplanPlanner`] into a [`RemoteSubqueryExec`].
//!
//! One concern per module: [`rule`] walks the plan and decides what to
//! push; [`check`] says whether an expression computes exactly what
//! DataFusion computes; [`replace`] builds the remote query and the node
//! replacing the subtree; [`node`] is that logical node and its planner;
//! [`exec`] the physical plan that runs the query.

pub mod check;
pub mod exec;
pub mod node;
pub mod replace;
pub mod rule;

pub use exec::RemoteSubqueryExec;
pub use node::{RemoteSubplanNode, SubplanPlanner};
pub use rule::SubplanPushdown;
