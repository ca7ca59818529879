//! `information_schema._pg_expandarray(array)`, the set-returning function JDBC's
//! `getPrimaryKeys` and `getIndexInfo` expand index keys with: one `(x, n)` row per element,
//! `x` the element and `n` its position from 1.
//!
//! DataFusion has no set-returning scalar functions, so the statement rewrite turns the call
//! into `unnest(_pg_expandarray_rows(array))` (several calls in one select list expand in step, as
//! in Postgres) and `(keys).x` into `get_field(keys, 'x')`; this function makes the list of
//! `(x, n)` structs. An `int2vector` such as `pg_index.indkey` is text here (`1 2`): its
//! numbers are the elements.
//!
//! It owns only this function.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int32Builder, ListBuilder, StructBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Fields, Int32Type};
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

/// The name the rewrite calls.
pub const NAME: &str = "_pg_expandarray_rows";

pub fn register(ctx: &SessionContext) {
    ctx.register_udf(ScalarUDF::from(ExpandArray {
        signature: Signature::any(1, Volatility::Immutable),
    }));
}

fn fields() -> Fields {
    Fields::from(vec![
        Field::new("x", DataType::Int32, true),
        Field::new("n", DataType::Int32, false),
    ])
}

fn item() -> Arc<Field> {
    Arc::new(Field::new("item", DataType::Struct(fields()), true))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ExpandArray {
    signature: Signature,
}

impl ScalarUDFImpl for ExpandArray {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match &args[0] {
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 | DataType::Null => {}
            DataType::List(f) | DataType::LargeList(f) if f.data_type().is_integer() => {}
            other => return plan_err!("_pg_expandarray expects an integer array, not {other}"),
        }
        Ok(DataType::List(item()))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let input = &arrays[0];
        let mut out =
            ListBuilder::new(StructBuilder::from_fields(fields(), input.len())).with_field(item());
        match input.data_type() {
            DataType::List(_) | DataType::LargeList(_) => {
                let lists = cast(input, &DataType::new_list(DataType::Int32, true))?;
                let lists = lists.as_list::<i32>();
                for row in 0..lists.len() {
                    if lists.is_null(row) {
                        out.append_null();
                        continue;
                    }
                    let values = lists.value(row);
                    push(&mut out, values.as_primitive::<Int32Type>().iter());
                }
            }
            _ => {
                let text = cast(input, &DataType::Utf8)?;
                for value in text.as_string::<i32>() {
                    let Some(value) = value else {
                        out.append_null();
                        continue;
                    };
                    let parsed: std::result::Result<Vec<i32>, _> =
                        value.split_ascii_whitespace().map(str::parse).collect();
                    match parsed {
                        Ok(numbers) => push(&mut out, numbers.into_iter().map(Some)),
                        Err(_) => {
                            return exec_err!(
                                "invalid input syntax for type int2vector: \"{value}\""
                            );
                        }
                    }
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish()) as ArrayRef))
    }
}

/// One row's `(x, n)` pairs.
fn push(out: &mut ListBuilder<StructBuilder>, elements: impl Iterator<Item = Option<i32>>) {
    let structs = out.values();
    for (i, x) in elements.enumerate() {
        structs
            .field_builder::<Int32Builder>(0)
            .expect("x is the first field")
            .append_option(x);
        structs
            .field_builder::<Int32Builder>(1)
            .expect("n is the second field")
            .append_value(i as i32 + 1);
        structs.append(true);
    }
    out.append(true);
}
