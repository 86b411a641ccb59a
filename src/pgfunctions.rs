//! PostgreSQL's session information functions that clients call right after
//! connecting: `version()` (drivers parse "PostgreSQL <major>.<minor>" out
//! of it), `current_database()` and `current_schema()`.
//!
//! They are registered on each session's context because their values
//! depend on the session (the database named at connect).

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
use datafusion::prelude::SessionContext;

/// The text of `version()`.
pub fn version_text() -> String {
    format!(
        "PostgreSQL {} on {}-linux, Koios {} (Apache DataFusion {})",
        crate::SERVER_VERSION
            .split(' ')
            .next()
            .unwrap_or(crate::SERVER_VERSION),
        std::env::consts::ARCH,
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION
    )
}

/// A function of no arguments returning `value`.
fn constant(name: &str, value: String) -> datafusion::logical_expr::ScalarUDF {
    create_udf(
        name,
        Vec::new(),
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                value.clone(),
            ))))
        }),
    )
}

/// Registers the functions on a session whose database is `database`.
pub fn register(ctx: &SessionContext, database: &str, schema: &str) {
    ctx.register_udf(constant("version", version_text()));
    ctx.register_udf(constant("current_database", database.to_string()));
    ctx.register_udf(constant("current_schema", schema.to_string()));
}
