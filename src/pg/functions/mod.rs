//! PostgreSQL's functions that clients call while connecting and
//! introspecting: session information (`version()` — drivers parse
//! "PostgreSQL <major>.<minor>" out of it — `current_database()`,
//! `current_schema()`, `current_setting`, `set_config` …) and catalog helpers
//! (`format_type`, `pg_get_indexdef`, `pg_get_constraintdef`,
//! `has_*_privilege`, `to_regtype` …).
//!
//! They are registered on each session's context because many depend on the
//! session (its database, user and settings; `pg_backend_pid` and
//! `pg_cancel_backend` its pid and the engine's sessions, see [`activity`]).
//! Helpers with no Koios-specific meaning come from `datafusion-pg-catalog`.

mod activity;
mod json;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, ListBuilder, StringArray, StringBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog as crate_catalog;

use crate::engine::search_path::search_path;
use crate::engine::settings::Settings;
use crate::pg::catalog::{definitions, object_names, relation_schemas, static_tables};

/// The text of `version()`.
pub fn version_text() -> String {
    format!(
        "PostgreSQL {} on {}-linux, Koios {} (Apache DataFusion {})",
        crate::engine::settings::SERVER_VERSION
            .split(' ')
            .next()
            .unwrap_or(crate::engine::settings::SERVER_VERSION),
        std::env::consts::ARCH,
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION
    )
}

type Body = dyn Fn(&[ArrayRef], usize) -> Result<ArrayRef> + Send + Sync;

/// A scalar function over whole argument arrays, with several arities.
struct Function {
    name: String,
    signature: Signature,
    /// Argument types of each accepted arity; arguments are cast to them.
    arities: Vec<Vec<DataType>>,
    returns: DataType,
    body: Arc<Body>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function")
            .field("name", &self.name)
            .finish()
    }
}

impl PartialEq for Function {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.body, &other.body)
    }
}

impl Eq for Function {}

impl std::hash::Hash for Function {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl ScalarUDFImpl for Function {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(self.returns.clone())
    }

    /// Clients pass OIDs and numbers as int4, int8 or text: cast them.
    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        match self.arities.iter().find(|a| a.len() == arg_types.len()) {
            Some(arity) => Ok(arity.clone()),
            None => datafusion::common::plan_err!(
                "function {} does not take {} arguments",
                self.name,
                arg_types.len()
            ),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows.max(1)))
            .collect::<Result<_>>()?;
        let out = (self.body)(&arrays, if all_scalar { 1 } else { rows.max(1) })?;
        if all_scalar && out.len() == 1 {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

fn function(
    name: &str,
    arities: Vec<Vec<DataType>>,
    returns: DataType,
    volatility: Volatility,
    body: impl Fn(&[ArrayRef], usize) -> Result<ArrayRef> + Send + Sync + 'static,
) -> ScalarUDF {
    let signature = if arities.iter().all(|a| a.is_empty()) {
        Signature::exact(Vec::new(), volatility)
    } else if arities.iter().any(|a| a.is_empty()) {
        Signature::one_of(
            vec![TypeSignature::Exact(Vec::new()), TypeSignature::UserDefined],
            volatility,
        )
    } else {
        Signature::user_defined(volatility)
    };
    ScalarUDF::new_from_impl(Function {
        name: name.to_string(),
        signature,
        arities,
        returns,
        body: Arc::new(body),
    })
}

/// A function of no arguments returning `value`.
fn constant(name: &str, value: String) -> ScalarUDF {
    function(
        name,
        vec![vec![]],
        DataType::Utf8,
        Volatility::Stable,
        move |_, rows| Ok(Arc::new(StringArray::from(vec![value.as_str(); rows]))),
    )
}

/// Text arguments as `Option<&str>` per row (any string type).
fn strings(array: &ArrayRef) -> Result<Vec<Option<String>>> {
    let cast = datafusion::arrow::compute::cast(array, &DataType::Utf8)?;
    let strings = cast.as_string::<i32>();
    Ok((0..strings.len())
        .map(|i| (!strings.is_null(i)).then(|| strings.value(i).to_string()))
        .collect())
}

fn oids(array: &ArrayRef) -> Result<Vec<Option<i32>>> {
    let cast = datafusion::arrow::compute::cast(array, &DataType::Int32)?;
    Ok(cast.as_primitive::<Int32Type>().iter().collect())
}

/// Registers the functions over the engine's sessions (`pg_backend_pid`,
/// `pg_cancel_backend`), after [`register`]: they replace the fixed ones.
pub fn register_activity(
    ctx: &SessionContext,
    session: &crate::engine::extension::SessionIdentity,
) {
    activity::register(ctx, session);
}

/// Registers the functions on a session of `user` in `database`.
pub fn register(ctx: &SessionContext, database: &str, user: &str, settings: Arc<Mutex<Settings>>) {
    let read = {
        let settings = Arc::clone(&settings);
        move || settings.lock().unwrap_or_else(|p| p.into_inner()).clone()
    };

    ctx.register_udf(constant("version", version_text()));
    ctx.register_udf(constant("current_database", database.to_string()));
    for name in ["current_user", "session_user", "user", "current_role"] {
        ctx.register_udf(constant(name, user.to_string()));
    }
    let user_name = user.to_string();
    ctx.register_udf(function(
        "pg_get_userbyid",
        vec![vec![DataType::Int32]],
        DataType::Utf8,
        Volatility::Stable,
        move |args, _| {
            let names: StringArray = oids(&args[0])?
                .iter()
                .map(|o| o.map(|_| user_name.as_str()))
                .collect();
            Ok(Arc::new(names))
        },
    ));

    let settings_of = read.clone();
    ctx.register_udf(function(
        "current_schema",
        vec![vec![]],
        DataType::Utf8,
        Volatility::Stable,
        move |_, rows| {
            let settings = settings_of();
            let first = settings
                .current_schema()
                .map(str::to_string)
                .or_else(|| search_path(&settings).into_iter().next());
            Ok(Arc::new(StringArray::from(vec![first; rows])))
        },
    ));
    let settings_of = read.clone();
    ctx.register_udf(function(
        "current_schemas",
        vec![vec![DataType::Boolean]],
        DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true))),
        Volatility::Stable,
        move |args, rows| {
            let implicit = args[0].as_boolean();
            let path = search_path(&settings_of());
            let mut list = ListBuilder::new(StringBuilder::new());
            for row in 0..rows {
                if implicit.is_valid(row) && implicit.value(row) {
                    list.values().append_value("pg_catalog");
                }
                for schema in &path {
                    list.values().append_value(schema);
                }
                list.append(true);
            }
            Ok(Arc::new(list.finish()))
        },
    ));

    // A relation is visible when its schema is on search_path (or is
    // pg_catalog), as in PostgreSQL; OIDs Koios did not hand out are.
    let settings_of = read.clone();
    ctx.register_udf(function(
        "pg_table_is_visible",
        vec![vec![DataType::Int32]],
        DataType::Boolean,
        Volatility::Stable,
        move |args, _| {
            let settings = settings_of();
            let mut path = search_path(&settings);
            if let Some(current) = settings.current_schema() {
                path.push(current.to_string());
            }
            let schemas = relation_schemas().lock().unwrap_or_else(|p| p.into_inner());
            let visible: BooleanArray = oids(&args[0])?
                .iter()
                .map(|o| {
                    o.map(|o| match schemas.get(&o) {
                        Some(schema) => schema == "pg_catalog" || path.contains(schema),
                        None => true,
                    })
                })
                .collect();
            Ok(Arc::new(visible))
        },
    ));
    let settings_of = read.clone();
    let lookup = move |args: &[ArrayRef], rows: usize| -> Result<ArrayRef> {
        let settings = settings_of();
        let names = strings(&args[0])?;
        let missing_ok = match args.get(1) {
            Some(flags) => flags
                .as_boolean()
                .iter()
                .map(|f| f.unwrap_or(false))
                .collect(),
            None => vec![false; rows],
        };
        let mut out = StringBuilder::new();
        for (row, name) in names.iter().enumerate() {
            match name {
                None => out.append_null(),
                Some(name) => match settings.get(name) {
                    Some(value) => out.append_value(value),
                    None if missing_ok.get(row).copied().unwrap_or(false) => out.append_null(),
                    None => {
                        return exec_err!("unrecognized configuration parameter \"{name}\"");
                    }
                },
            }
        }
        Ok(Arc::new(out.finish()))
    };
    ctx.register_udf(function(
        "current_setting",
        vec![
            vec![DataType::Utf8],
            vec![DataType::Utf8, DataType::Boolean],
        ],
        DataType::Utf8,
        Volatility::Stable,
        lookup,
    ));
    let writable = Arc::clone(&settings);
    ctx.register_udf(function(
        "set_config",
        vec![vec![DataType::Utf8, DataType::Utf8, DataType::Boolean]],
        DataType::Utf8,
        Volatility::Volatile,
        move |args, _| {
            let names = strings(&args[0])?;
            let values = strings(&args[1])?;
            let mut settings = writable.lock().unwrap_or_else(|p| p.into_inner());
            let mut out = StringBuilder::new();
            for (name, value) in names.iter().zip(&values) {
                match (name, value) {
                    (Some(name), Some(value)) => {
                        settings.set(name, value).map_err(|e| {
                            datafusion::error::DataFusionError::Execution(e.to_string())
                        })?;
                        out.append_value(value);
                    }
                    _ => out.append_null(),
                }
            }
            Ok(Arc::new(out.finish()))
        },
    ));

    register_catalog_helpers(ctx);
}

/// `pg_type` names to OIDs, for `to_regtype`.
fn type_oids() -> &'static HashMap<String, i32> {
    static OIDS: OnceLock<HashMap<String, i32>> = OnceLock::new();
    OIDS.get_or_init(|| {
        let mut map = HashMap::new();
        let Ok(tables) = static_tables() else {
            return map;
        };
        for batch in tables.pg_type.data() {
            let (Some(oid), Some(name)) =
                (batch.column_by_name("oid"), batch.column_by_name("typname"))
            else {
                continue;
            };
            let (Ok(oid), Ok(name)) = (oids(oid), strings(name)) else {
                continue;
            };
            for (oid, name) in oid.into_iter().zip(name) {
                if let (Some(oid), Some(name)) = (oid, name) {
                    map.insert(name, oid);
                }
            }
        }
        for (alias, name) in [
            ("integer", "int4"),
            ("int", "int4"),
            ("smallint", "int2"),
            ("bigint", "int8"),
            ("real", "float4"),
            ("double precision", "float8"),
            ("boolean", "bool"),
            ("character varying", "varchar"),
            ("character", "bpchar"),
            ("timestamp without time zone", "timestamp"),
            ("timestamp with time zone", "timestamptz"),
            ("time without time zone", "time"),
            ("decimal", "numeric"),
        ] {
            if let Some(oid) = map.get(name).copied() {
                map.insert(alias.to_string(), oid);
            }
        }
        map
    })
}

fn register_catalog_helpers(ctx: &SessionContext) {
    for name in [
        "has_table_privilege",
        "has_schema_privilege",
        "has_database_privilege",
        "has_any_column_privilege",
        "has_column_privilege",
        "has_function_privilege",
        "has_sequence_privilege",
    ] {
        ctx.register_udf(crate_catalog::has_privilege_udf::create_has_privilege_udf(
            name,
        ));
    }
    ctx.register_udf(crate_catalog::format_type::create_format_type_udf());
    ctx.register_udf(crate_catalog::pg_get_expr_udf::create_pg_get_expr_udf());
    ctx.register_udf(crate_catalog::create_pg_backend_pid_udf());
    ctx.register_udf(crate_catalog::create_pg_get_partition_ancestors_udf());
    ctx.register_udf(crate_catalog::quote_ident_udf::create_quote_ident_udf());
    ctx.register_udf(crate_catalog::quote_ident_udf::create_parse_ident_udf());
    ctx.register_udf(crate_catalog::array_bounds_udf::create_array_upper_udf());
    ctx.register_udf(crate_catalog::array_bounds_udf::create_array_lower_udf());
    if let Ok(tables) = static_tables() {
        ctx.register_udtf("pg_get_keywords", tables.pg_get_keywords.clone());
    }
    crate_catalog::generate_series_arg_coercion::CoerceIntArgsToBigInt::widen(ctx);

    // Everything Koios shows is visible: search_path is not consulted.
    for name in [
        "pg_type_is_visible",
        "pg_function_is_visible",
        "pg_collation_is_visible",
        "pg_opclass_is_visible",
        "pg_operator_is_visible",
        "pg_ts_config_is_visible",
        "pg_ts_parser_is_visible",
        "pg_ts_dict_is_visible",
        "pg_ts_template_is_visible",
        "pg_conversion_is_visible",
        "pg_statistics_obj_is_visible",
    ] {
        ctx.register_udf(function(
            name,
            vec![vec![DataType::Int32]],
            DataType::Boolean,
            Volatility::Stable,
            |args, _| {
                let visible: BooleanArray =
                    oids(&args[0])?.iter().map(|o| o.map(|_| true)).collect();
                Ok(Arc::new(visible))
            },
        ));
    }
    ctx.register_udf(function(
        "pg_encoding_to_char",
        vec![vec![DataType::Int32]],
        DataType::Utf8,
        Volatility::Stable,
        |args, _| {
            let names: StringArray = oids(&args[0])?
                .iter()
                .map(|e| e.map(|e| if e == 6 { "UTF8" } else { "" }))
                .collect();
            Ok(Arc::new(names))
        },
    ));
    for (name, registry) in [
        ("koios_regclass_name", object_names()),
        ("koios_regnamespace_name", object_names()),
    ] {
        ctx.register_udf(function(
            name,
            vec![vec![DataType::Int32]],
            DataType::Utf8,
            Volatility::Stable,
            move |args, _| {
                let names = registry.lock().unwrap_or_else(|p| p.into_inner());
                let out: StringArray = oids(&args[0])?
                    .iter()
                    .map(|o| o.map(|o| names.get(&o).cloned().unwrap_or_else(|| o.to_string())))
                    .collect();
                Ok(Arc::new(out))
            },
        ));
    }
    // Koios has no sequences, advisory locks or serial columns.
    ctx.register_udf(function(
        "pg_get_serial_sequence",
        vec![vec![DataType::Utf8, DataType::Utf8]],
        DataType::Utf8,
        Volatility::Stable,
        |args, _| {
            Ok(datafusion::arrow::array::new_null_array(
                &DataType::Utf8,
                args[0].len(),
            ))
        },
    ));
    ctx.register_udf(function(
        "pg_advisory_unlock_all",
        vec![vec![]],
        DataType::Utf8,
        Volatility::Volatile,
        |_, rows| {
            Ok(datafusion::arrow::array::new_null_array(
                &DataType::Utf8,
                rows,
            ))
        },
    ));
    ctx.register_udf(ScalarUDF::new_from_impl(json::JsonBuildObject::default()));
    // Relations have no local storage, partitions, publications, statistics
    // objects or scan counters: PostgreSQL's answers for such a relation.
    // (OIDs arrive as int4, int8 or quoted text: `function` casts them.)
    for (name, returns) in [
        ("pg_relation_size", DataType::Int64),
        ("pg_total_relation_size", DataType::Int64),
        ("pg_table_size", DataType::Int64),
        ("pg_indexes_size", DataType::Int64),
        ("pg_stat_get_numscans", DataType::Int64),
        ("pg_relation_is_publishable", DataType::Boolean),
        ("pg_get_partkeydef", DataType::Utf8),
        ("pg_get_statisticsobjdef_columns", DataType::Utf8),
    ] {
        let value = match returns {
            DataType::Int64 => ScalarValue::Int64(Some(0)),
            DataType::Boolean => ScalarValue::Boolean(Some(true)),
            _ => ScalarValue::Utf8(None),
        };
        ctx.register_udf(function(
            name,
            vec![vec![DataType::Int32]],
            returns,
            Volatility::Stable,
            move |args, _| value.to_array_of_size(args[0].len()),
        ));
    }
    // Only built-in functions exist, and `\df` lists none of them.
    for name in [
        "pg_get_function_result",
        "pg_get_function_arguments",
        "pg_get_function_identity_arguments",
        "pg_get_functiondef",
    ] {
        ctx.register_udf(function(
            name,
            vec![vec![DataType::Int32]],
            DataType::Utf8,
            Volatility::Stable,
            |args, _| {
                let empty: StringArray = oids(&args[0])?.iter().map(|o| o.map(|_| "")).collect();
                Ok(Arc::new(empty))
            },
        ));
    }
    ctx.register_udf(function(
        "pg_is_in_recovery",
        vec![vec![]],
        DataType::Boolean,
        Volatility::Stable,
        |_, rows| Ok(Arc::new(BooleanArray::from(vec![false; rows]))),
    ));
    // Koios objects carry no comments.
    let no_comment = |args: &[ArrayRef], _: usize| -> Result<ArrayRef> {
        Ok(datafusion::arrow::array::new_null_array(
            &DataType::Utf8,
            args[0].len(),
        ))
    };
    ctx.register_udf(function(
        "obj_description",
        vec![vec![DataType::Int32], vec![DataType::Int32, DataType::Utf8]],
        DataType::Utf8,
        Volatility::Stable,
        no_comment,
    ));
    ctx.register_udf(function(
        "col_description",
        vec![vec![DataType::Int32, DataType::Int32]],
        DataType::Utf8,
        Volatility::Stable,
        no_comment,
    ));
    ctx.register_udf(function(
        "shobj_description",
        vec![vec![DataType::Int32, DataType::Utf8]],
        DataType::Utf8,
        Volatility::Stable,
        no_comment,
    ));
    ctx.register_udf(function(
        "to_regtype",
        vec![vec![DataType::Utf8]],
        DataType::Int32,
        Volatility::Stable,
        |args, _| {
            let found: Int32Array = strings(&args[0])?
                .iter()
                .map(|n| {
                    n.as_ref().and_then(|n| {
                        let n = n
                            .trim()
                            .trim_start_matches("pg_catalog.")
                            .to_ascii_lowercase();
                        type_oids().get(&n).copied()
                    })
                })
                .collect();
            Ok(Arc::new(found))
        },
    ));
    let definition_of = |args: &[ArrayRef], column: Option<&ArrayRef>| -> Result<ArrayRef> {
        let definitions = definitions().lock().unwrap_or_else(|p| p.into_inner());
        let columns = match column {
            Some(c) => oids(c)?,
            None => vec![Some(0); args[0].len()],
        };
        let out: StringArray = oids(&args[0])?
            .iter()
            .zip(columns)
            .map(|(oid, column)| {
                let definition = definitions.get(&(*oid)?)?;
                match column {
                    Some(n) if n > 0 => definition.columns.get(n as usize - 1).cloned(),
                    _ => Some(definition.text.clone()),
                }
            })
            .collect();
        Ok(Arc::new(out))
    };
    ctx.register_udf(function(
        "pg_get_indexdef",
        vec![
            vec![DataType::Int32],
            vec![DataType::Int32, DataType::Int32, DataType::Boolean],
        ],
        DataType::Utf8,
        Volatility::Stable,
        move |args, _| definition_of(args, args.get(1)),
    ));
    ctx.register_udf(function(
        "pg_get_constraintdef",
        vec![
            vec![DataType::Int32],
            vec![DataType::Int32, DataType::Boolean],
        ],
        DataType::Utf8,
        Volatility::Stable,
        move |args, _| definition_of(args, None),
    ));
}
