//! `ORDER BY … LIMIT n` over a MongoDB scan becomes `find` with `sort` and
//! `limit`, so MongoDB returns n documents instead of the whole collection.
//!
//! DataFusion's `SortExec` stays on top (re-sorting n rows is free) and is
//! what makes the answer exact; the rewrite only has to make sure the n
//! documents MongoDB picks are the ones DataFusion would pick. Two things
//! differ: MongoDB puts null and missing first when ascending (SQL's default
//! puts NULLs last), and it can only sort some types as SQL does. So:
//! - only columns of one scalar type are sort keys (numbers, strings,
//!   ObjectIds, booleans, dates), never JSON text, binaries or nested values;
//! - a first key whose NULLs SQL wants elsewhere runs as two `find`s: the
//!   non-null documents sorted, then the null ones (or the reverse);
//! - further keys must want NULLs where MongoDB puts them.

use std::sync::Arc;

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::error::Result;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::sorts::sort::SortExec;
use mongodb::bson::Document;

use crate::scan::{Find, MongoScanExec, and_null_test};
use crate::types::schema::Shape;

/// The physical optimizer rule; the engine registers it once.
#[derive(Debug, Default)]
pub struct MongoTopN;

impl PhysicalOptimizerRule for MongoTopN {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_down(|node| {
            let Some(sort) = node.as_ref().downcast_ref::<SortExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some(fetch) = sort.fetch() else {
                return Ok(Transformed::no(node));
            };
            // DataFusion wraps leaves in a CooperativeExec (yielding to the
            // scheduler); look through it.
            let input = sort.input();
            let cooperative = input.as_ref().downcast_ref::<CooperativeExec>().is_some();
            let leaf = match input.children().first() {
                Some(child) if cooperative => Arc::clone(child),
                _ => Arc::clone(input),
            };
            let Some(scan) = leaf.as_ref().downcast_ref::<MongoScanExec>() else {
                return Ok(Transformed::no(node));
            };
            let Some(finds) = sorted_finds(sort, scan, fetch as i64) else {
                return Ok(Transformed::no(node));
            };
            let mut new_input: Arc<dyn ExecutionPlan> = Arc::new(scan.with_finds(finds));
            if cooperative {
                new_input = replace_children_if_necessary(Arc::clone(input), vec![new_input])?;
            }
            Ok(Transformed::yes(replace_children_if_necessary(
                Arc::clone(&node),
                vec![new_input],
            )?))
        })
        .data()
    }

    fn name(&self) -> &str {
        "mongo_topn"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The `find` commands for the scan under `sort`, if MongoDB can pick the rows.
fn sorted_finds(sort: &SortExec, scan: &MongoScanExec, fetch: i64) -> Option<Vec<Find>> {
    let [find] = scan.finds() else {
        return None;
    };
    if find.sort.is_some() || find.limit.is_some() {
        return None;
    }
    let columns = scan.output_paths();
    let mut keys = Vec::new();
    for sort_expr in sort.expr().iter() {
        let column = sort_expr.expr.as_ref().downcast_ref::<Column>()?;
        let (name, shape) = columns.get(column.index())?;
        let sortable = matches!(
            shape,
            Shape::Bool
                | Shape::Int32
                | Shape::Int64
                | Shape::Double
                | Shape::Decimal(_)
                | Shape::String
                | Shape::ObjectId
                | Shape::DateTime
        );
        if !sortable || !name.split('.').all(crate::scan::plain_field_name) {
            return None;
        }
        let descending = sort_expr.options.descending;
        // MongoDB: nulls first ascending, last descending.
        let native = sort_expr.options.nulls_first != descending;
        keys.push((name.clone(), descending, native));
    }
    let ((first, first_descending, first_native), rest) = keys.split_first()?;
    if rest.iter().any(|(_, _, native)| !native) {
        return None;
    }
    let mut order = Document::new();
    for (name, descending, _) in &keys {
        order.insert(name.clone(), if *descending { -1 } else { 1 });
    }
    let phase = |filter: Document| Find {
        filter,
        sort: Some(order.clone()),
        limit: Some(fetch),
    };
    if *first_native {
        return Some(vec![phase(find.filter.clone())]);
    }
    let non_null = phase(and_null_test(&find.filter, first, false));
    let null = phase(and_null_test(&find.filter, first, true));
    Some(if *first_descending {
        vec![null, non_null] // DESC NULLS FIRST
    } else {
        vec![non_null, null] // ASC NULLS LAST
    })
}
