//! `hamming_distance(a, b)`: number of differing bits between two 64-bit hashes.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, Int64Builder};
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::args::{FINOPS_SECTION, check_arity, coerce_int, output, to_arrays};

const NAME: &str = "hamming_distance";
const SYNTAX: &str = "hamming_distance(a, b)";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        FINOPS_SECTION,
        "Number of bits (0 to 64) that differ between two BIGINT hashes, e.g. two simhash \
         values. NULL if either is NULL.",
        SYNTAX,
    )
    .with_sql_example("SELECT hamming_distance(0, 7);\n-- 3")
    .with_argument("a", "A 64-bit hash.")
    .with_argument("b", "A 64-bit hash.")
    .with_related_udf("simhash")
    .build()
});

/// `hamming_distance`: differing bits of two hashes.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HammingDistanceFunc {
    signature: Signature,
}

impl Default for HammingDistanceFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl HammingDistanceFunc {
    /// A `hamming_distance`.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for HammingDistanceFunc {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(NAME, SYNTAX, arg_types.len(), 2, 2)?;
        Ok(vec![
            coerce_int(NAME, "a", &arg_types[0])?,
            coerce_int(NAME, "b", &arg_types[1])?,
        ])
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = to_arrays(&args.args)?;
        let (a, b) = (
            arrays[0].as_primitive::<Int64Type>(),
            arrays[1].as_primitive::<Int64Type>(),
        );
        let mut builder = Int64Builder::with_capacity(a.len());
        for i in 0..a.len() {
            if a.is_null(i) || b.is_null(i) {
                builder.append_null();
            } else {
                builder.append_value(i64::from((a.value(i) ^ b.value(i)).count_ones()));
            }
        }
        output(Arc::new(builder.finish()), all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}
