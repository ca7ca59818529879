//! Argument plumbing shared by the UDFs: type coercion rules (plan time) and typed access
//! to argument arrays (run time). No pricing logic.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, LargeStringArray, StringArray, StringViewArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, DocSection};

use crate::money::{MONEY_PRECISION, MONEY_SCALE};

/// Documentation section of every FinOps function.
pub const FINOPS_SECTION: DocSection = DocSection {
    include: true,
    label: "FinOps Functions",
    description: None,
};

/// The money type, `Decimal128(38, 12)`.
pub(crate) const MONEY_TYPE: DataType = DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE);

/// Checks `min..=max` arguments, naming the function and its syntax on failure.
pub(crate) fn check_arity(
    name: &str,
    syntax: &str,
    n: usize,
    min: usize,
    max: usize,
) -> Result<()> {
    if n < min || n > max {
        return plan_err!("{name} takes {min} to {max} arguments, got {n}: {syntax}");
    }
    Ok(())
}

/// Text arguments stay as they are (no copy); NULL literals become `Utf8`.
pub(crate) fn coerce_text(name: &str, arg: &str, dt: &DataType) -> Result<DataType> {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Ok(dt.clone()),
        DataType::Null => Ok(DataType::Utf8),
        DataType::Dictionary(_, value) if value.is_string() => Ok(value.as_ref().clone()),
        other => plan_err!("{name}: `{arg}` must be text, got {other}"),
    }
}

/// Integer arguments become `Int64` (token counts are `bigint`).
pub(crate) fn coerce_int(name: &str, arg: &str, dt: &DataType) -> Result<DataType> {
    if dt.is_integer() || dt.is_null() {
        Ok(DataType::Int64)
    } else {
        plan_err!("{name}: `{arg}` must be an integer, got {dt}")
    }
}

/// Time arguments become microsecond timestamps, keeping any time zone (the stored value is
/// UTC either way); dates and text are read as UTC.
pub(crate) fn coerce_time(name: &str, arg: &str, dt: &DataType) -> Result<DataType> {
    match dt {
        DataType::Timestamp(_, tz) => Ok(DataType::Timestamp(TimeUnit::Microsecond, tz.clone())),
        DataType::Date32 | DataType::Date64 | DataType::Null => {
            Ok(DataType::Timestamp(TimeUnit::Microsecond, None))
        }
        dt if dt.is_string() => Ok(DataType::Timestamp(TimeUnit::Microsecond, None)),
        other => plan_err!("{name}: `{arg}` must be a timestamp or date, got {other}"),
    }
}

/// Evaluates the arguments as arrays of one length; the flag says whether every argument
/// was a scalar (then the result is returned as a scalar too).
pub(crate) fn to_arrays(args: &[ColumnarValue]) -> Result<(Vec<ArrayRef>, bool)> {
    let all_scalar = args.iter().all(|a| matches!(a, ColumnarValue::Scalar(_)));
    Ok((ColumnarValue::values_to_arrays(args)?, all_scalar))
}

/// Wraps a result array as the UDF output, collapsing to a scalar for scalar inputs.
pub(crate) fn output(array: ArrayRef, all_scalar: bool) -> Result<ColumnarValue> {
    if all_scalar && array.len() == 1 {
        return Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
            &array, 0,
        )?));
    }
    Ok(ColumnarValue::Array(array))
}

/// A money array from values and validity.
pub(crate) fn money_array(values: Vec<i128>, nulls: Vec<bool>) -> Result<ArrayRef> {
    money_array_with(values, NullBuffer::from(nulls))
}

/// [`money_array`] with the validity already packed into a [`NullBuffer`].
pub(crate) fn money_array_with(values: Vec<i128>, nulls: NullBuffer) -> Result<ArrayRef> {
    let nulls = (nulls.null_count() > 0).then_some(nulls);
    let array = Decimal128Array::new(values.into(), nulls)
        .with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)?;
    Ok(Arc::new(array))
}

/// Borrowed view of any string array.
pub(crate) enum Text<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> Text<'a> {
    /// Views `array`, which coercion made a string array.
    pub(crate) fn new(array: &'a ArrayRef) -> Result<Self> {
        Ok(match array.data_type() {
            DataType::Utf8 => Text::Utf8(array.as_string::<i32>()),
            DataType::LargeUtf8 => Text::Large(array.as_string::<i64>()),
            DataType::Utf8View => Text::View(array.as_string_view()),
            other => return exec_err!("expected a text argument, got {other}"),
        })
    }

    /// The value of row `i`, `None` when NULL.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            Text::Utf8(a) => a.is_valid(i).then(|| a.value(i)),
            Text::Large(a) => a.is_valid(i).then(|| a.value(i)),
            Text::View(a) => a.is_valid(i).then(|| a.value(i)),
        }
    }
}

/// The string literal of a scalar argument, if it is one.
pub(crate) fn literal_text(value: Option<&ScalarValue>) -> Option<Option<&str>> {
    match value? {
        ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v) => {
            Some(v.as_deref())
        }
        _ => None,
    }
}
