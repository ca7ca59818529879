//! `model_price(provider, model, kind [, ts])`: a catalog price in USD per million tokens.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, TimestampMicrosecondType};
use datafusion::common::{Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature,
    Volatility,
};

use super::now_micros;
use crate::args::{
    FINOPS_SECTION, MONEY_TYPE, Text, check_arity, coerce_text, coerce_time, literal_text,
    money_array, output, to_arrays,
};
use crate::pricing::{PriceBookHandle, PriceKind};

const NAME: &str = "model_price";
const SYNTAX: &str = "model_price(provider, model, kind [, ts])";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        FINOPS_SECTION,
        "Catalog price in USD per million tokens of one kind for a model, from the price row \
         valid at `ts` (default: now). Kinds: input, output, cache_read, cache_write, \
         cache_write_1h, batch_input, batch_output, priority_input, priority_output, \
         flex_input, flex_output, tier_input, tier_output, tier_cache_read, tier_cache_write. \
         NULL when the model is unknown or the catalog has no such price (the fallbacks \
         token_cost applies are not shown here). An unknown literal kind is a planning error.",
        SYNTAX,
    )
    .with_sql_example("SELECT model_price('openai', 'gpt-4o', 'input');\n-- 2.500000000000")
    .with_argument("provider", "Canonical provider.")
    .with_argument("model", "Model id as reported.")
    .with_argument("kind", "Price column name, e.g. 'input' or 'cache_read'.")
    .with_argument("ts", "Instant whose price is wanted (default: now).")
    .with_related_udf("token_cost")
    .build()
});

/// `model_price`: one price column of the row valid at a given time.
#[derive(Debug)]
pub struct ModelPriceFunc {
    signature: Signature,
    book: PriceBookHandle,
}

impl ModelPriceFunc {
    /// A `model_price` reading prices from `book`.
    pub fn new(book: PriceBookHandle) -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Stable),
            book,
        }
    }
}

impl PartialEq for ModelPriceFunc {
    fn eq(&self, other: &Self) -> bool {
        self.book.same_slot(&other.book)
    }
}
impl Eq for ModelPriceFunc {}
impl std::hash::Hash for ModelPriceFunc {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NAME.hash(state);
        self.book.slot_id().hash(state);
    }
}

impl ScalarUDFImpl for ModelPriceFunc {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(MONEY_TYPE)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        if let Some(Some(kind)) = literal_text(args.scalar_arguments.get(2).copied().flatten())
            && PriceKind::parse(kind).is_none()
        {
            return plan_err!(
                "{NAME}: unknown price kind '{kind}'; valid kinds: {}",
                PriceKind::valid_names()
            );
        }
        Ok(Arc::new(Field::new(NAME, MONEY_TYPE, true)))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(NAME, SYNTAX, arg_types.len(), 3, 4)?;
        const ARGS: [&str; 4] = ["provider", "model", "kind", "ts"];
        arg_types
            .iter()
            .enumerate()
            .map(|(i, dt)| match i {
                3 => coerce_time(NAME, ARGS[i], dt),
                _ => coerce_text(NAME, ARGS[i], dt),
            })
            .collect()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = to_arrays(&args.args)?;
        let book = self.book.snapshot();
        let n = arrays[0].len();
        let result: ArrayRef = {
            let (provider, model, kind) = (
                Text::new(&arrays[0])?,
                Text::new(&arrays[1])?,
                Text::new(&arrays[2])?,
            );
            let ts = arrays
                .get(3)
                .map(|a| a.as_primitive::<TimestampMicrosecondType>());
            let now = now_micros();
            let mut values = vec![0i128; n];
            let mut valid = vec![false; n];
            for i in 0..n {
                let at = match ts {
                    Some(t) if t.is_null(i) => continue,
                    Some(t) => t.value(i),
                    None => now,
                };
                let (Some(p), Some(m), Some(k)) = (provider.get(i), model.get(i), kind.get(i))
                else {
                    continue;
                };
                let Some(kind) = PriceKind::parse(k) else {
                    continue;
                };
                if let Some(price) = book.price_at(p, m, at).and_then(|row| row.price(kind)) {
                    values[i] = price;
                    valid[i] = true;
                }
            }
            money_array(values, valid)?
        };
        output(result, all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}
