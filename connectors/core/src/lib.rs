//! The contract between Koios and its connectors.
//!
//! A *connector* knows one kind of backend (`files`, `postgres`, …) and turns a
//! [`SourceSpec`] from configuration into a live [`Source`]. A source exposes
//! its tables as one DataFusion [`CatalogProvider`]: the source name is the
//! catalog, so `<source>.<schema>.<table>` addresses any table from any session.
//!
//! Keeping this crate tiny lets every connector crate depend on it without
//! depending on the server, and lets the server treat all backends alike.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::CatalogProvider;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::optimizer::OptimizerRule;
use datafusion::physical_optimizer::PhysicalOptimizerRule;

pub mod capabilities;
pub mod catalog;
pub mod pgbinary;
pub mod pgtext;
pub mod remote_sql;
pub mod tls;
pub use capabilities::{Capabilities, DirectRowsRequest, RemoteIdentity, TableCapabilities};
pub use remote_sql::RemoteDialect;
pub use tls::{TlsMode, TlsOptions};

/// One `[[source]]` entry from the configuration, after `${ENV}` expansion.
#[derive(Clone, PartialEq)]
pub struct SourceSpec {
    /// Catalog name clients use (`<name>.<schema>.<table>`).
    pub name: String,
    /// Connector kind, e.g. `files`.
    pub kind: String,
    /// Where the data lives; may carry credentials, so it is never printed.
    pub url: String,
    /// Every other key of the entry, interpreted by the connector.
    pub options: BTreeMap<String, toml::Value>,
}

impl fmt::Debug for SourceSpec {
    // Hand-written so a URL with a password never reaches a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &redact_url(&self.url))
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SourceSpec {
    /// A string option, or `None` when absent.
    pub fn option_str(&self, key: &str) -> Result<Option<&str>> {
        match self.options.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.option_error(key, "a string", other)),
        }
    }

    /// A boolean option, or `None` when absent.
    pub fn option_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.options.get(key) {
            None => Ok(None),
            Some(toml::Value::Boolean(b)) => Ok(Some(*b)),
            Some(other) => Err(self.option_error(key, "true or false", other)),
        }
    }

    /// A non-negative integer option, or `None` when absent.
    pub fn option_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.options.get(key) {
            None => Ok(None),
            Some(toml::Value::Integer(i)) if *i >= 0 => Ok(Some(*i as usize)),
            Some(other) => Err(self.option_error(key, "a non-negative integer", other)),
        }
    }

    /// A list-of-strings option, or `None` when absent.
    pub fn option_string_list(&self, key: &str) -> Result<Option<Vec<String>>> {
        match self.options.get(key) {
            None => Ok(None),
            Some(toml::Value::Array(items)) if items.iter().all(|v| v.is_str()) => Ok(Some(
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            )),
            Some(other) => Err(self.option_error(key, "a list of strings", other)),
        }
    }

    /// Fails on any option the connector does not know, so typos are caught
    /// at start instead of being silently ignored.
    pub fn reject_unknown_options(&self, known: &[&str]) -> Result<()> {
        for key in self.options.keys() {
            if !known.contains(&key.as_str()) {
                return Err(DataFusionError::Configuration(format!(
                    "source '{}' (kind {}): unknown option '{key}'; known options: {}",
                    self.name,
                    self.kind,
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        }
        Ok(())
    }

    fn option_error(&self, key: &str, expected: &str, got: &toml::Value) -> DataFusionError {
        DataFusionError::Configuration(format!(
            "source '{}': option '{key}' must be {expected}, got {}",
            self.name,
            got.type_str()
        ))
    }
}

/// The values of a prepared statement's parameters (`$1` is the first),
/// for one execution of a plan made with the placeholders left in.
///
/// A session keeps one such *generic* plan per parameterized statement
/// whose placeholders were all pushed into remote scans, and binds each
/// execution's values into it through [`ExecutionPlan::with_new_state`]
/// instead of planning the statement again; a scan holding placeholders
/// sends them to its server as parameters of its own query.
///
/// [`ExecutionPlan::with_new_state`]: datafusion::physical_plan::ExecutionPlan::with_new_state
#[derive(Debug, Clone, PartialEq)]
pub struct QueryParams(pub Vec<datafusion::common::ScalarValue>);

impl QueryParams {
    /// The value of placeholder `id` (`"$2"`) as `data_type`.
    pub fn value(
        &self,
        id: &str,
        data_type: &datafusion::arrow::datatypes::DataType,
    ) -> Result<datafusion::common::ScalarValue> {
        let value = id
            .strip_prefix('$')
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| self.0.get(i))
            .ok_or_else(|| DataFusionError::Execution(format!("no value for parameter {id}")))?;
        if value.data_type() == *data_type {
            Ok(value.clone())
        } else {
            value.cast_to(data_type)
        }
    }
}

/// Rewrites a plan bottom-up, replacing each node `replace` returns a new
/// node for: the body of optimizer rules that rewrite one node shape.
pub fn replace_nodes_up(
    plan: datafusion::logical_expr::LogicalPlan,
    replace: impl Fn(
        &datafusion::logical_expr::LogicalPlan,
    ) -> Result<Option<datafusion::logical_expr::LogicalPlan>>,
) -> Result<datafusion::common::tree_node::Transformed<datafusion::logical_expr::LogicalPlan>> {
    use datafusion::common::tree_node::{Transformed, TreeNode};
    plan.transform_up(|node| match replace(&node)? {
        Some(replaced) => Ok(Transformed::yes(replaced)),
        None => Ok(Transformed::no(node)),
    })
}

/// A decimal from its unscaled integer text and scale: (`"-12345"`, 2) → `-123.45`.
pub fn decimal_string(unscaled: &str, scale: i8) -> String {
    let mut out = String::with_capacity(unscaled.len() + 2);
    push_decimal(&mut out, unscaled, scale);
    out
}

/// Appends [`decimal_string`]`(unscaled, scale)` to `out` without
/// allocating: result encoding calls it once per value.
pub fn push_decimal(out: &mut String, unscaled: &str, scale: i8) {
    let (negative, digits) = match unscaled.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, unscaled),
    };
    if scale <= 0 {
        if digits == "0" {
            out.push('0');
            return;
        }
        if negative {
            out.push('-');
        }
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', (-(scale as i32)) as usize));
        return;
    }
    if negative {
        out.push('-');
    }
    let scale = scale as usize;
    if digits.len() <= scale {
        out.push('0');
        out.push('.');
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(digits);
    } else {
        let (int, frac) = digits.split_at(digits.len() - scale);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    }
}

/// Appends the decimal with unscaled value `unscaled` and `scale` to `out`
/// (as [`push_decimal`]), formatting the integer on the stack.
pub fn push_decimal_i128(out: &mut String, unscaled: i128, scale: i8) {
    // i128::MIN has 39 digits and a sign.
    let mut digits = [0u8; 40];
    let mut at = digits.len();
    let mut rest = unscaled.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if unscaled < 0 {
        at -= 1;
        digits[at] = b'-';
    }
    // Only ASCII digits and '-' were written.
    let text = std::str::from_utf8(&digits[at..]).unwrap_or("0");
    push_decimal(out, text, scale);
}

/// Replaces the password of a `scheme://user:password@host` URL with `***`.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match (authority.rfind('@'), authority.find(':')) {
        (Some(at), Some(colon)) if colon < at => format!(
            "{}{}:***{}",
            &url[..scheme_end + 3],
            &authority[..colon],
            &rest[at..]
        ),
        _ => url.to_string(),
    }
}

/// Connectors append rows; `INSERT OVERWRITE`/`REPLACE INTO` are refused
/// with a message naming the table.
pub fn append_only(insert_op: datafusion::logical_expr::dml::InsertOp, table: &str) -> Result<()> {
    if insert_op != datafusion::logical_expr::dml::InsertOp::Append {
        return Err(DataFusionError::NotImplemented(format!(
            "{insert_op} into {table} is not supported; only INSERT INTO"
        )));
    }
    Ok(())
}

/// A scan node's plan properties: `partitions` unordered, bounded partitions
/// emitted incrementally.
pub fn leaf_plan_properties(
    schema: &datafusion::arrow::datatypes::SchemaRef,
    partitions: usize,
) -> Arc<datafusion::physical_plan::PlanProperties> {
    use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
    Arc::new(datafusion::physical_plan::PlanProperties::new(
        datafusion::physical_expr::EquivalenceProperties::new(Arc::clone(schema)),
        datafusion::physical_plan::Partitioning::UnknownPartitioning(partitions.max(1)),
        EmissionType::Incremental,
        Boundedness::Bounded,
    ))
}

/// The `ExecutionPlan` methods every connector's scan node (a leaf with
/// `schema` and `properties` fields) writes the same way. With a second
/// argument, the field (a `Vec<Arc<dyn PhysicalExpr>>`) holding the dynamic
/// filters the node applies: they are visited, so the joins producing them
/// see them used and fill them in.
#[macro_export]
macro_rules! leaf_execution_plan_methods {
    ($name:literal) => {
        $crate::leaf_execution_plan_methods!(@methods $name);

        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(
                &std::sync::Arc<dyn datafusion::physical_expr::PhysicalExpr>,
            ) -> datafusion::error::Result<
                datafusion::common::tree_node::TreeNodeRecursion,
            >,
        ) -> datafusion::error::Result<datafusion::common::tree_node::TreeNodeRecursion> {
            Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
        }
    };
    ($name:literal, $filters:ident) => {
        $crate::leaf_execution_plan_methods!(@methods $name);

        fn apply_expressions(
            &self,
            f: &mut dyn FnMut(
                &std::sync::Arc<dyn datafusion::physical_expr::PhysicalExpr>,
            ) -> datafusion::error::Result<
                datafusion::common::tree_node::TreeNodeRecursion,
            >,
        ) -> datafusion::error::Result<datafusion::common::tree_node::TreeNodeRecursion> {
            use datafusion::common::tree_node::TreeNodeRecursion;
            for filter in &self.$filters {
                if f(filter)? == TreeNodeRecursion::Stop {
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        }
    };
    (@methods $name:literal) => {
        fn name(&self) -> &str {
            $name
        }

        fn properties(&self) -> &std::sync::Arc<datafusion::physical_plan::PlanProperties> {
            &self.properties
        }

        fn schema(&self) -> datafusion::arrow::datatypes::SchemaRef {
            std::sync::Arc::clone(&self.schema)
        }

        fn children(&self) -> Vec<&std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
            Vec::new()
        }

        #[allow(deprecated)]
        fn with_new_children(
            self: std::sync::Arc<Self>,
            _children: Vec<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>,
        ) -> datafusion::error::Result<std::sync::Arc<dyn datafusion::physical_plan::ExecutionPlan>>
        {
            // A leaf: there are no children to replace.
            Ok(self)
        }
    };
}

/// A live, attached source.
#[async_trait]
pub trait Source: Send + Sync + fmt::Debug {
    /// The catalog holding this source's schemas and tables.
    fn catalog(&self) -> Arc<dyn CatalogProvider>;

    /// Re-reads the backend's list of schemas and tables, so objects created
    /// remotely become visible without a restart.
    async fn refresh(&self) -> Result<()>;

    /// Releases connections and background tasks before the process exits
    /// (drivers that run their own tasks must stop them while the runtime
    /// still runs).
    async fn close(&self) {}
}

/// Knows how to attach sources of one kind.
#[async_trait]
pub trait Connector: Send + Sync {
    /// The `kind = "…"` value this connector handles.
    fn kind(&self) -> &'static str;

    /// Attaches a source. Errors must name the source and never contain secrets.
    ///
    /// `runtime` is the engine's shared runtime: connectors that read through
    /// `object_store` register their stores there so every session can scan.
    async fn connect(
        &self,
        spec: &SourceSpec,
        runtime: &Arc<RuntimeEnv>,
    ) -> Result<Arc<dyn Source>>;

    /// Logical optimizer rules this kind of source needs (pushdown of whole
    /// subplans), run after DataFusion's own.
    fn optimizer_rules(&self) -> Vec<Arc<dyn OptimizerRule + Send + Sync>> {
        Vec::new()
    }

    /// Physical optimizer rules this kind of source needs.
    fn physical_optimizer_rules(&self) -> Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> {
        Vec::new()
    }

    /// What this connector says of `table`, if it made it (see
    /// [`capabilities`]); `None` for any other table.
    fn table_capabilities(
        &self,
        _table: &dyn datafusion::catalog::TableProvider,
    ) -> Option<TableCapabilities> {
        None
    }

    /// Whether `node` is a leaf of this connector that reads its rows when
    /// executed, so a cached plan holding it can run again.
    fn reads_when_executed(&self, _node: &dyn datafusion::physical_plan::ExecutionPlan) -> bool {
        false
    }

    /// The rows of `node` written straight into `DataRow` bodies: `None`
    /// when this connector did not make `node`; `Some(None)` when it did but
    /// cannot serve `request`.
    fn direct_rows(
        &self,
        _node: &dyn datafusion::physical_plan::ExecutionPlan,
        _request: DirectRowsRequest<'_>,
    ) -> Option<Option<pgtext::StartDataRows>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_only() {
        assert_eq!(
            redact_url("postgres://bob:s3cr@t@db:5432/x"),
            "postgres://bob:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://bob@db/x"), "postgres://bob@db/x");
        assert_eq!(redact_url("file:///data/demo"), "file:///data/demo");
    }

    #[test]
    fn decimals_format_from_text_and_from_integers_alike() {
        for (unscaled, scale, expected) in [
            (0i128, 2, "0.00"),
            (5, 2, "0.05"),
            (-5, 2, "-0.05"),
            (12345, 2, "123.45"),
            (-12345, 2, "-123.45"),
            (100, 0, "100"),
            (-7, -3, "-7000"),
            (0, -3, "0"),
            (i128::MIN, 0, "-170141183460469231731687303715884105728"),
            (i128::MAX, 38, "1.70141183460469231731687303715884105727"),
        ] {
            assert_eq!(decimal_string(&unscaled.to_string(), scale), expected);
            let mut out = String::from("x");
            push_decimal_i128(&mut out, unscaled, scale);
            assert_eq!(out, format!("x{expected}"));
        }
    }
}

/// An error reported by a backend server, carrying its SQLSTATE when the
/// server has one, so clients see e.g. 23505 for a duplicate key.
///
/// Wrap it as `DataFusionError::External`; the message must already name the
/// source and must not contain secrets.
#[derive(Debug, Clone)]
pub struct RemoteError {
    pub sqlstate: Option<String>,
    pub message: String,
}

impl RemoteError {
    pub fn into_datafusion(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteError {}

/// Counts the rows `stream` yields into `metrics` (partition `partition`),
/// so `EXPLAIN ANALYZE` shows how many rows each remote read returned.
pub fn count_output_rows(
    stream: datafusion::execution::SendableRecordBatchStream,
    metrics: &datafusion::physical_plan::metrics::ExecutionPlanMetricsSet,
    partition: usize,
) -> datafusion::execution::SendableRecordBatchStream {
    use futures::StreamExt;
    let baseline = datafusion::physical_plan::metrics::BaselineMetrics::new(metrics, partition);
    let schema = stream.schema();
    let counted = stream.map(move |batch| {
        if let Ok(batch) = &batch {
            baseline.record_output(batch.num_rows());
        }
        batch
    });
    Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, counted))
}
