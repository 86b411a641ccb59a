//! `avg` of a decimal, computed from `sum` and `count` computed elsewhere
//! (by a server, or per member of a striped table).
//!
//! A server's own `avg(numeric)` rounds to its own scale, so the aggregate
//! itself is not pushed; its parts are exact everywhere. The subplan rule
//! asks the server for `sum(x)` and `count(x)` and finishes here with
//! DataFusion's arithmetic (its decimal averager: the sum scaled to the
//! result's scale, divided by the count, truncated), so the answer is the
//! one DataFusion computes alone.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, Decimal128Builder};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Int64Type};
use datafusion::common::{DataFusionError, Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// `koios_decimal_avg(sum, count)` returning `Decimal128(precision, scale)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DecimalAvg {
    precision: u8,
    scale: i8,
    signature: Signature,
}

impl DecimalAvg {
    /// The function finishing an average of type `Decimal128(precision, scale)`.
    pub fn udf(precision: u8, scale: i8) -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(DecimalAvg {
            precision,
            scale,
            signature: Signature::any(2, Volatility::Immutable),
        }))
    }
}

impl ScalarUDFImpl for DecimalAvg {
    fn name(&self) -> &str {
        "koios_decimal_avg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Decimal128(self.precision, self.scale))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [sums, counts] = &arrays[..] else {
            return exec_err!("koios_decimal_avg takes a sum and a count");
        };
        let DataType::Decimal128(_, sum_scale) = sums.data_type() else {
            return exec_err!("koios_decimal_avg: the sum is not a decimal");
        };
        let sums = sums.as_primitive::<Decimal128Type>();
        let counts = counts.as_primitive::<Int64Type>();
        let shift = self.scale as i32 - *sum_scale as i32;
        if shift < 0 {
            return exec_err!("Arithmetic Overflow in AvgAccumulator");
        }
        let multiplier = 10i128.pow(shift as u32);
        let bound = 10i128.pow(self.precision as u32);
        let mut out = Decimal128Builder::with_capacity(sums.len())
            .with_data_type(DataType::Decimal128(self.precision, self.scale));
        for row in 0..sums.len() {
            if sums.is_null(row) || counts.is_null(row) || counts.value(row) == 0 {
                out.append_null();
                continue;
            }
            let value = sums
                .value(row)
                .checked_mul(multiplier)
                .map(|scaled| scaled / counts.value(row) as i128)
                .filter(|v| v.abs() < bound)
                .ok_or_else(|| {
                    DataFusionError::Execution("Arithmetic Overflow in AvgAccumulator".into())
                })?;
            out.append_value(value);
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Decimal128Array, Int64Array};
    use datafusion::arrow::datatypes::Field;

    #[test]
    fn truncates_like_datafusion() {
        let udf = DecimalAvg::udf(19, 6);
        let sums = Decimal128Array::from(vec![Some(1000), Some(-1000), None, Some(5)])
            .with_data_type(DataType::Decimal128(25, 2));
        let counts = Int64Array::from(vec![3, 3, 1, 0]);
        let result = udf
            .invoke_with_args(ScalarFunctionArgs {
                args: vec![
                    ColumnarValue::Array(Arc::new(sums)),
                    ColumnarValue::Array(Arc::new(counts)),
                ],
                arg_fields: vec![
                    Arc::new(Field::new("s", DataType::Decimal128(25, 2), true)),
                    Arc::new(Field::new("c", DataType::Int64, true)),
                ],
                number_rows: 4,
                return_field: Arc::new(Field::new("a", DataType::Decimal128(19, 6), true)),
                config_options: Default::default(),
            })
            .expect("evaluates");
        let ColumnarValue::Array(array) = result else {
            panic!("an array");
        };
        let array = array.as_primitive::<Decimal128Type>();
        // 10.00 / 3 = 3.333333 (truncated), -3.333333, NULL sum, zero count.
        assert_eq!(array.value(0), 3_333_333);
        assert_eq!(array.value(1), -3_333_333);
        assert!(array.is_null(2));
        assert!(array.is_null(3));
    }
}
