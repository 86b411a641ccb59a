//! Member gates: pruning of hash-striped members by values bound at
//! execution.
//!
//! A query of a striped table comparing its key with a constant reads only
//! the members that can hold it ([`super::placement::prune`]). A prepared
//! lookup (`WHERE id = $1`) has no constant when planned: its generic plan
//! (kept and re-run with each execution's values, see
//! [`crate::engine::plancache`]) must hold a branch for every member. Each
//! such branch sits under a gate that knows the key's comparisons with
//! placeholders and its member's place; when the execution's values are
//! bound into the plan, the gate opens only if one of the values of every
//! comparison hashes to its member — the other members are never asked.
//! Unbound (a plan run without values) or unsure (a value that is not of
//! the key's type), the gate opens: the member's own query filters anyway,
//! so a gate only ever saves work, never rows.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::DataType;
use async_trait::async_trait;
use datafusion::common::{DFSchemaRef, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion::logical_expr::{
    Expr, Extension, LogicalPlan, UserDefinedLogicalNode, UserDefinedLogicalNodeCore,
};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, EmptyRecordBatchStream, ExecutionPlan, PlanProperties,
};
use datafusion::physical_planner::{ExtensionPlanner, PhysicalPlanner};
use koios_connector::QueryParams;

use super::placement::Placement;

/// One value a key comparison names: a placeholder (`$1` is 0) or a
/// constant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub enum GateValue {
    Param(usize),
    Constant(ScalarValue),
}

impl fmt::Display for GateValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateValue::Param(index) => write!(f, "${}", index + 1),
            GateValue::Constant(value) => write!(f, "{value}"),
        }
    }
}

/// Where a member stands in its table's placement, and what the query
/// compares the key with: one list of values per comparison (`key = $1`
/// is one value, `key IN ($1, $2)` two); the member is read only if each
/// list has a value it holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct Gate {
    /// The branch's group (its member, for a table without copies), and
    /// which group owns each bucket.
    pub member: usize,
    pub placement: Placement,
    pub key_type: DataType,
    pub comparisons: Vec<Vec<GateValue>>,
}

impl Gate {
    /// Whether the member may hold rows for `params` (`None`: no values
    /// bound, so it may).
    fn opens(&self, params: Option<&QueryParams>) -> bool {
        let Some(QueryParams(values)) = params else {
            return true;
        };
        self.comparisons.iter().all(|values_of_comparison| {
            values_of_comparison.iter().any(|value| {
                let value = match value {
                    GateValue::Param(index) => match values.get(*index) {
                        Some(value) => value,
                        None => return true,
                    },
                    GateValue::Constant(value) => value,
                };
                // `key = NULL` matches nothing, but a gate need not know:
                // opening is always correct.
                if value.is_null() {
                    return true;
                }
                match self.placement.group_of_value(value, &self.key_type) {
                    Ok(Some(member)) => member == self.member,
                    _ => true,
                }
            })
        })
    }

    fn describe(&self) -> String {
        let comparisons: Vec<String> = self
            .comparisons
            .iter()
            .map(|values| {
                let values: Vec<String> = values.iter().map(ToString::to_string).collect();
                format!("[{}]", values.join(", "))
            })
            .collect();
        format!(
            "member {} of {} holds one of {}",
            self.member + 1,
            self.placement.groups,
            comparisons.join(" and ")
        )
    }
}

/// The logical node: `input` (one member's branch) read only if the gate
/// opens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct MemberGate {
    pub gate: Gate,
    pub input: LogicalPlan,
}

impl MemberGate {
    /// `input` under `gate`, as a plan.
    pub fn plan(gate: Gate, input: LogicalPlan) -> LogicalPlan {
        LogicalPlan::Extension(Extension {
            node: Arc::new(MemberGate { gate, input }),
        })
    }
}

impl UserDefinedLogicalNodeCore for MemberGate {
    fn name(&self) -> &str {
        "MemberGate"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        Vec::new()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "MemberGate: {}", self.gate.describe())
    }

    fn with_exprs_and_inputs(
        &self,
        _exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let input = inputs
            .pop()
            .ok_or_else(|| DataFusionError::Internal("MemberGate takes one input".into()))?;
        Ok(MemberGate {
            gate: self.gate.clone(),
            input,
        })
    }

    fn supports_limit_pushdown(&self) -> bool {
        // A gate passes its input's rows or none: a limit above it holds
        // below it too.
        true
    }
}

/// Plans [`MemberGate`] as [`MemberGateExec`].
#[derive(Debug, Default)]
pub struct MemberGatePlanner;

#[async_trait]
impl ExtensionPlanner for MemberGatePlanner {
    async fn plan_extension(
        &self,
        _planner: &dyn PhysicalPlanner,
        node: &dyn UserDefinedLogicalNode,
        _logical_inputs: &[&LogicalPlan],
        physical_inputs: &[Arc<dyn ExecutionPlan>],
        _session: &dyn datafusion::catalog::Session,
        _planning: &PhysicalPlanningContext,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(gate) = node.as_any().downcast_ref::<MemberGate>() else {
            return Ok(None);
        };
        let input = physical_inputs
            .first()
            .ok_or_else(|| DataFusionError::Internal("MemberGate takes one input".into()))?;
        Ok(Some(Arc::new(MemberGateExec::new(
            gate.gate.clone(),
            Arc::clone(input),
        ))))
    }
}

/// The physical gate: its input's partitions, or no rows when the bound
/// values belong to other members.
#[derive(Debug)]
pub struct MemberGateExec {
    gate: Gate,
    input: Arc<dyn ExecutionPlan>,
    params: Option<Arc<QueryParams>>,
    properties: Arc<PlanProperties>,
}

impl MemberGateExec {
    fn new(gate: Gate, input: Arc<dyn ExecutionPlan>) -> Self {
        let properties = Arc::clone(input.properties());
        MemberGateExec {
            gate,
            input,
            params: None,
            properties,
        }
    }
}

impl MemberGateExec {
    /// Whether this member is read when `params` are bound (`None`: none
    /// bound).
    pub fn opens_for(&self, params: Option<&QueryParams>) -> bool {
        self.gate.opens(params.or(self.params.as_deref()))
    }

    /// The member's branch.
    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }
}

impl DisplayAs for MemberGateExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "MemberGateExec: {}", self.gate.describe())
    }
}

impl ExecutionPlan for MemberGateExec {
    fn name(&self) -> &str {
        "MemberGateExec"
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(
            &Arc<dyn datafusion::physical_expr::PhysicalExpr>,
        ) -> Result<datafusion::common::tree_node::TreeNodeRecursion>,
    ) -> Result<datafusion::common::tree_node::TreeNodeRecursion> {
        Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = children
            .pop()
            .ok_or_else(|| DataFusionError::Internal("MemberGateExec takes one input".into()))?;
        let mut gated = MemberGateExec::new(self.gate.clone(), input);
        gated.params = self.params.clone();
        Ok(Arc::new(gated))
    }

    fn with_new_state(
        &self,
        state: Arc<dyn std::any::Any + Send + Sync>,
    ) -> Option<Arc<dyn ExecutionPlan>> {
        let params = state.downcast::<QueryParams>().ok()?;
        let mut bound = MemberGateExec::new(self.gate.clone(), Arc::clone(&self.input));
        bound.params = Some(params);
        Some(Arc::new(bound))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if self.gate.opens(self.params.as_deref()) {
            self.input.execute(partition, context)
        } else {
            Ok(Box::pin(EmptyRecordBatchStream::new(self.input.schema())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Placement {
        Placement {
            buckets: 4096,
            groups: 3,
            owners: None,
        }
    }

    fn gate(member: usize, comparisons: Vec<Vec<GateValue>>) -> Gate {
        Gate {
            member,
            placement: three(),
            key_type: DataType::Int64,
            comparisons,
        }
    }

    #[test]
    fn exactly_the_holding_member_opens() {
        let holder = three()
            .group_of_value(&ScalarValue::Int64(Some(42)), &DataType::Int64)
            .unwrap()
            .unwrap();
        let params = QueryParams(vec![ScalarValue::Int64(Some(42))]);
        for member in 0..3 {
            let opens = gate(member, vec![vec![GateValue::Param(0)]]).opens(Some(&params));
            assert_eq!(opens, member == holder, "member {member}");
            // Unbound: always open.
            assert!(gate(member, vec![vec![GateValue::Param(0)]]).opens(None));
        }
        // A value of another type the key takes (int4 for int8) hashes alike.
        let narrow = QueryParams(vec![ScalarValue::Int32(Some(42))]);
        assert!(gate(holder, vec![vec![GateValue::Param(0)]]).opens(Some(&narrow)));
        // NULL and values not of the key's type open every gate.
        for value in [
            ScalarValue::Int64(None),
            ScalarValue::Utf8(Some("x".into())),
        ] {
            let params = QueryParams(vec![value]);
            assert!((0..3).all(|m| gate(m, vec![vec![GateValue::Param(0)]]).opens(Some(&params))));
        }
    }

    #[test]
    fn in_lists_open_each_holder_and_conjunctions_narrow() {
        let member = |v: i64| {
            three()
                .group_of_value(&ScalarValue::Int64(Some(v)), &DataType::Int64)
                .unwrap()
                .unwrap()
        };
        let (a, b) = (1i64, (2..100).find(|v| member(*v) != member(1)).unwrap());
        let params = QueryParams(vec![
            ScalarValue::Int64(Some(a)),
            ScalarValue::Int64(Some(b)),
        ]);
        let list = vec![GateValue::Param(0), GateValue::Param(1)];
        for m in 0..3 {
            let opens = gate(m, vec![list.clone()]).opens(Some(&params));
            assert_eq!(opens, m == member(a) || m == member(b));
            // `id IN ($1, $2) AND id = $1`: only $1's member.
            let both = gate(m, vec![list.clone(), vec![GateValue::Param(0)]]);
            assert_eq!(both.opens(Some(&params)), m == member(a));
        }
    }
}
