//! `token_cost(provider, model, input, output [, cached [, cache_write [, ts
//! [, service_tier [, cache_write_1h]]]]])`: cost in USD of one usage row.

use std::sync::LazyLock;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::datatypes::{DataType, Int64Type, TimestampMicrosecondType};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use rustc_hash::FxHashMap;

use super::now_micros;
use super::semantics::{ServiceTier, TokenUsage, row_cost};
use crate::args::{
    FINOPS_SECTION, MONEY_TYPE, Text, check_arity, coerce_int, coerce_text, coerce_time,
    money_array, output, to_arrays,
};
use crate::pricing::PriceBookHandle;

const NAME: &str = "token_cost";
const SYNTAX: &str = "token_cost(provider, model, input_tokens, output_tokens [, cached_input_tokens [, cache_write_tokens [, ts [, service_tier [, cache_write_1h_tokens]]]]])";

static DOCUMENTATION: LazyLock<Documentation> =
    LazyLock::new(|| {
        Documentation::builder(
        FINOPS_SECTION,
        "Cost in USD (NUMERIC(38,12)) of one usage row at the price valid at `ts`. \
         `input_tokens` includes cached reads and cache writes; `output_tokens` includes \
         reasoning tokens. uncached = input - cached - cache_write - cache_write_1h; \
         cost = (uncached*input + cached*cache_read + cache_write*cache_write \
         + cache_write_1h*cache_write_1h + output*output) / 1e6 with per-million prices, \
         rounded half away from zero to 12 decimals. Long-context prices apply to the whole \
         request when input_tokens exceeds the model's tier threshold; service_tier 'batch' \
         uses batch prices (half price where the catalog has none), 'priority' and 'flex' \
         their own prices. NULL (never 0) for an unknown model, NULL or negative token \
         counts, a NULL ts, or cached + cache writes above input.",
        SYNTAX,
    )
    .with_sql_example(
        "SELECT token_cost('openai', 'gpt-4o-2024-08-06', 1000000, 1000000);\n-- 12.500000000000",
    )
    .with_argument("provider", "Canonical provider (`openai`, `anthropic`, `aws_bedrock`, ...).")
    .with_argument("model", "Model id as reported; normalised with `canonical_model`.")
    .with_argument("input_tokens", "All input tokens, cached and cache writes included.")
    .with_argument("output_tokens", "All output tokens, reasoning included.")
    .with_argument("cached_input_tokens", "Cache-read tokens (default 0).")
    .with_argument("cache_write_tokens", "5-minute cache-write tokens (default 0).")
    .with_argument("ts", "Request time; picks the price row valid then (default: now).")
    .with_argument("service_tier", "`standard` (default), `batch`, `priority` or `flex`.")
    .with_argument("cache_write_1h_tokens", "1-hour cache-write tokens (default 0).")
    .with_related_udf("model_price")
    .with_related_udf("canonical_model")
    .build()
    });

/// `token_cost`: exact cost of a usage row from the current price book.
#[derive(Debug)]
pub struct TokenCostFunc {
    signature: Signature,
    book: PriceBookHandle,
}

impl TokenCostFunc {
    /// A `token_cost` reading prices from `book`.
    pub fn new(book: PriceBookHandle) -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Stable),
            book,
        }
    }
}

impl PartialEq for TokenCostFunc {
    fn eq(&self, other: &Self) -> bool {
        self.book.same_slot(&other.book)
    }
}
impl Eq for TokenCostFunc {}
impl std::hash::Hash for TokenCostFunc {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NAME.hash(state);
        self.book.slot_id().hash(state);
    }
}

impl ScalarUDFImpl for TokenCostFunc {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(MONEY_TYPE)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(NAME, SYNTAX, arg_types.len(), 4, 9)?;
        const ARGS: [&str; 9] = [
            "provider",
            "model",
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "ts",
            "service_tier",
            "cache_write_1h_tokens",
        ];
        arg_types
            .iter()
            .enumerate()
            .map(|(i, dt)| match i {
                0 | 1 | 7 => coerce_text(NAME, ARGS[i], dt),
                6 => coerce_time(NAME, ARGS[i], dt),
                _ => coerce_int(NAME, ARGS[i], dt),
            })
            .collect()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = to_arrays(&args.args)?;
        let book = self.book.snapshot();
        let result = compute(&book, &arrays)?;
        output(result, all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

/// Costs of one batch. Model resolution runs once per distinct (provider, model) in the
/// batch, and consecutive rows of the same model skip even that hash lookup.
fn compute(book: &crate::PriceBook, arrays: &[ArrayRef]) -> Result<ArrayRef> {
    let n = arrays[0].len();
    let provider = Text::new(&arrays[0])?;
    let model = Text::new(&arrays[1])?;
    let int = |i: usize| arrays.get(i).map(|a| a.as_primitive::<Int64Type>());
    let (input, out) = (int(2), int(3));
    let (cached, cache_write, cache_write_1h) = (int(4), int(5), int(8));
    let ts = arrays
        .get(6)
        .map(|a| a.as_primitive::<TimestampMicrosecondType>());
    let tier = arrays.get(7).map(Text::new).transpose()?;
    let now = now_micros();

    let mut values = vec![0i128; n];
    let mut valid = vec![false; n];
    let mut memo: FxHashMap<(&str, &str), Option<u32>> = FxHashMap::default();
    let mut last: Option<(&str, &str, Option<u32>)> = None;
    // Token columns may be absent (optional) or NULL in a row: both cases read here.
    let read = |col: Option<&Int64Array>, i: usize, default: i64| -> Option<i64> {
        match col {
            None => Some(default),
            Some(c) if c.is_null(i) => None,
            Some(c) => Some(c.value(i)),
        }
    };
    for i in 0..n {
        let (Some(p), Some(m)) = (provider.get(i), model.get(i)) else {
            continue;
        };
        let entry = match last {
            Some((lp, lm, e)) if lp == p && lm == m => e,
            _ => {
                let e = *memo
                    .entry((p, m))
                    .or_insert_with(|| book.resolve(p, m).map(|r| r.entry));
                last = Some((p, m, e));
                e
            }
        };
        let Some(entry) = entry else { continue };
        let usage = (|| {
            Some(TokenUsage {
                input: read(input, i, 0)?,
                output: read(out, i, 0)?,
                cached: read(cached, i, 0)?,
                cache_write: read(cache_write, i, 0)?,
                cache_write_1h: read(cache_write_1h, i, 0)?,
            })
        })();
        let Some(usage) = usage else { continue };
        let at = match ts {
            None => now,
            Some(t) if t.is_null(i) => continue,
            Some(t) => t.value(i),
        };
        let service_tier = match &tier {
            Some(t) => t
                .get(i)
                .map(ServiceTier::parse)
                .unwrap_or(ServiceTier::Standard),
            None => ServiceTier::Standard,
        };
        let Some(row) = book.row_index_at(entry, at) else {
            continue;
        };
        let Some(rates) = book.rates(row) else {
            continue;
        };
        if let Some(cost) = row_cost(rates, &usage, service_tier) {
            values[i] = cost;
            valid[i] = true;
        }
    }
    money_array(values, valid)
}
