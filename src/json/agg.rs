//! `json_agg(x)` and `jsonb_agg(x)`: the values of a group as a JSON array, in input order, SQL
//! NULL as `null`; NULL for a group with no rows, as in Postgres. Values become JSON as
//! `to_json` makes them (text quoted, JSON kept, lists and structs as arrays and objects);
//! `jsonb_agg` prints each element as `jsonb` does.
//!
//! `json_agg(x ORDER BY y)` is refused (0A000) rather than answered in an order it does not
//! keep: the partial arrays of parallel partitions are joined in no particular order.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;

use super::{is_json, json_field, normalized, to_json_values};

pub(super) fn register(ctx: &SessionContext) {
    for (name, normalize) in [("json_agg", false), ("jsonb_agg", true)] {
        ctx.register_udaf(AggregateUDF::from(JsonAgg {
            name,
            normalize,
            signature: Signature::any(1, Volatility::Immutable),
        }));
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonAgg {
    name: &'static str,
    normalize: bool,
    signature: Signature,
}

impl AggregateUDFImpl for JsonAgg {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field(&self, _args: &[FieldRef]) -> DfResult<FieldRef> {
        Ok(json_field(self.name))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[elements]", args.name),
            DataType::new_list(DataType::Utf8, true),
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        if !args.order_bys.is_empty() {
            return Err(DataFusionError::NotImplemented(format!(
                "{}(... ORDER BY ...): order the rows in a subquery instead",
                self.name
            )));
        }
        Ok(Box::new(JsonAggAccumulator {
            json: args.expr_fields.first().is_some_and(|f| is_json(f)),
            normalize: self.normalize,
            elements: Vec::new(),
            bytes: 0,
        }))
    }
}

#[derive(Debug)]
struct JsonAggAccumulator {
    /// Whether the input is JSON already (kept as it is) rather than a value to convert.
    json: bool,
    normalize: bool,
    /// Each row's JSON text.
    elements: Vec<String>,
    bytes: usize,
}

impl JsonAggAccumulator {
    fn push(&mut self, element: String) {
        self.bytes += element.capacity();
        self.elements.push(element);
    }
}

impl Accumulator for JsonAggAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        for value in to_json_values(&values[0], self.json)? {
            let element = match value {
                None => "null".to_string(),
                Some(v) if self.normalize => normalized(&v),
                Some(v) => v,
            };
            self.push(element);
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let lists = states[0].as_list::<i32>();
        for row in 0..lists.len() {
            if lists.is_null(row) {
                continue;
            }
            let elements = lists.value(row);
            for element in elements.as_string::<i32>().iter().flatten() {
                self.push(element.to_string());
            }
        }
        Ok(())
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let values: Vec<ScalarValue> = self
            .elements
            .iter()
            .map(|e| ScalarValue::Utf8(Some(e.clone())))
            .collect();
        Ok(vec![ScalarValue::List(ScalarValue::new_list_nullable(
            &values,
            &DataType::Utf8,
        ))])
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        if self.elements.is_empty() {
            return Ok(ScalarValue::Utf8(None));
        }
        Ok(ScalarValue::Utf8(Some(format!(
            "[{}]",
            self.elements.join(", ")
        ))))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self.bytes
            + self.elements.capacity() * std::mem::size_of::<String>()
    }
}
