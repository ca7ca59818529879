//! `price_version(provider, model [, ts])`: identifier of the price row that prices a model
//! at a given time (`provider/model/match@valid_from`).

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, AsArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, TimestampMicrosecondType};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::now_micros;
use crate::args::{FINOPS_SECTION, Text, check_arity, coerce_text, coerce_time, output, to_arrays};
use crate::pricing::PriceBookHandle;

const NAME: &str = "price_version";
const SYNTAX: &str = "price_version(provider, model [, ts])";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        FINOPS_SECTION,
        "Identifier of the price-book row that prices the model at `ts` (default: now), as \
         `provider/model/match@valid_from` (`-inf` for a row valid since always). NULL when \
         the model is unpriced at that time.",
        SYNTAX,
    )
    .with_sql_example(
        "SELECT price_version('openai', 'o3', TIMESTAMP '2025-07-01 00:00:00');\n\
         -- openai/o3/exact@2025-06-10T00:00:00Z",
    )
    .with_argument("provider", "Canonical provider.")
    .with_argument("model", "Model id as reported.")
    .with_argument("ts", "Instant whose price row is wanted (default: now).")
    .with_related_udf("token_cost")
    .build()
});

/// `price_version`: which catalog row a cost was computed from.
#[derive(Debug)]
pub struct PriceVersionFunc {
    signature: Signature,
    book: PriceBookHandle,
}

impl PriceVersionFunc {
    /// A `price_version` reading prices from `book`.
    pub fn new(book: PriceBookHandle) -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Stable),
            book,
        }
    }
}

impl PartialEq for PriceVersionFunc {
    fn eq(&self, other: &Self) -> bool {
        self.book.same_slot(&other.book)
    }
}
impl Eq for PriceVersionFunc {}
impl std::hash::Hash for PriceVersionFunc {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NAME.hash(state);
        self.book.slot_id().hash(state);
    }
}

impl ScalarUDFImpl for PriceVersionFunc {
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
        check_arity(NAME, SYNTAX, arg_types.len(), 2, 3)?;
        arg_types
            .iter()
            .enumerate()
            .map(|(i, dt)| match i {
                0 => coerce_text(NAME, "provider", dt),
                1 => coerce_text(NAME, "model", dt),
                _ => coerce_time(NAME, "ts", dt),
            })
            .collect()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = to_arrays(&args.args)?;
        let book = self.book.snapshot();
        let (provider, model) = (Text::new(&arrays[0])?, Text::new(&arrays[1])?);
        let ts = arrays
            .get(2)
            .map(|a| a.as_primitive::<TimestampMicrosecondType>());
        let now = now_micros();
        let mut builder = StringBuilder::new();
        for i in 0..arrays[0].len() {
            let at = match ts {
                Some(t) if t.is_null(i) => None,
                Some(t) => Some(t.value(i)),
                None => Some(now),
            };
            let version = match (provider.get(i), model.get(i), at) {
                (Some(p), Some(m), Some(at)) => book.price_at(p, m, at).map(|row| row.version()),
                _ => None,
            };
            builder.append_option(version);
        }
        output(Arc::new(builder.finish()), all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}
