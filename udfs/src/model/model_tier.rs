//! `model_tier(provider, model)`: `frontier`, `mid` or `small` by price band.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::StringBuilder;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::tier_of;
use crate::args::{FINOPS_SECTION, Text, check_arity, coerce_text, output, to_arrays};
use crate::cost::now_micros;
use crate::pricing::PriceBookHandle;

const NAME: &str = "model_tier";
const SYNTAX: &str = "model_tier(provider, model)";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        FINOPS_SECTION,
        "Tier of a model by its current standard price, input + output per million tokens: \
         `frontier` from 10 USD, `mid` from 1 USD, `small` below. A price row's `tier` column \
         overrides the band. NULL for an unpriced model.",
        SYNTAX,
    )
    .with_sql_example("SELECT model_tier('openai', 'gpt-4o-mini');\n-- small")
    .with_argument("provider", "Canonical provider.")
    .with_argument("model", "Model id as reported.")
    .with_related_udf("cheaper_alternative")
    .build()
});

/// `model_tier`: price band of a model.
#[derive(Debug)]
pub struct ModelTierFunc {
    signature: Signature,
    book: PriceBookHandle,
}

impl ModelTierFunc {
    /// A `model_tier` reading prices from `book`.
    pub fn new(book: PriceBookHandle) -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Stable),
            book,
        }
    }
}

impl PartialEq for ModelTierFunc {
    fn eq(&self, other: &Self) -> bool {
        self.book.same_slot(&other.book)
    }
}
impl Eq for ModelTierFunc {}
impl std::hash::Hash for ModelTierFunc {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NAME.hash(state);
        self.book.slot_id().hash(state);
    }
}

impl ScalarUDFImpl for ModelTierFunc {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(NAME, SYNTAX, arg_types.len(), 2, 2)?;
        Ok(vec![
            coerce_text(NAME, "provider", &arg_types[0])?,
            coerce_text(NAME, "model", &arg_types[1])?,
        ])
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = to_arrays(&args.args)?;
        let book = self.book.snapshot();
        let (provider, model) = (Text::new(&arrays[0])?, Text::new(&arrays[1])?);
        let now = now_micros();
        let mut builder = StringBuilder::new();
        for i in 0..arrays[0].len() {
            let tier = match (provider.get(i), model.get(i)) {
                (Some(p), Some(m)) => book.price_at(p, m, now).and_then(tier_of),
                _ => None,
            };
            builder.append_option(tier);
        }
        output(Arc::new(builder.finish()), all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}
