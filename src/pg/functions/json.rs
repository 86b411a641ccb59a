//! `json_build_object`: PostgreSQL's JSON object builder, as text.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringBuilder};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// `json_build_object(k1, v1, …)`: a JSON object as text.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct JsonBuildObject {
    signature: Signature,
}

impl Default for JsonBuildObject {
    fn default() -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for JsonBuildObject {
    fn name(&self) -> &str {
        "json_build_object"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if !args.args.len().is_multiple_of(2) {
            return exec_err!("json_build_object needs an even number of arguments");
        }
        let rows = args.number_rows.max(1);
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<Result<_>>()?;
        let mut out = StringBuilder::new();
        for row in 0..rows {
            let mut object = String::from("{");
            for (i, pair) in arrays.chunks(2).enumerate() {
                if i > 0 {
                    object.push_str(", ");
                }
                let key = ScalarValue::try_from_array(&pair[0], row)?;
                let value = ScalarValue::try_from_array(&pair[1], row)?;
                object.push_str(&json_string(&key.to_string()));
                object.push_str(" : ");
                object.push_str(&json_value(&value));
            }
            object.push('}');
            out.append_value(object);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

fn json_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_value(value: &ScalarValue) -> String {
    if value.is_null() {
        return "null".into();
    }
    match value {
        ScalarValue::Boolean(Some(b)) => b.to_string(),
        v if v.data_type().is_numeric() => v.to_string(),
        v => json_string(&v.to_string()),
    }
}
