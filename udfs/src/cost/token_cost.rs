//! `token_cost(provider, model, input, output [, cached [, cache_write [, ts
//! [, service_tier [, cache_write_1h [, context]]]]]])`: cost in USD of one usage row.

use std::sync::LazyLock;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use datafusion::arrow::buffer::{BooleanBuffer, Buffer, NullBuffer};
use datafusion::arrow::datatypes::{DataType, Int64Type, TimestampMicrosecondType};
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::now_micros;
use super::semantics::{RowRates, ServiceTier, TokenUsage, row_cost};
use crate::args::{
    FINOPS_SECTION, MONEY_TYPE, Text, check_arity, coerce_int, coerce_text, coerce_time,
    literal_text, money_array_with, output,
};
use crate::pricing::PriceBookHandle;
use crate::pricing::batch::{BatchKeys, NO_KEY, map_short};

const NAME: &str = "token_cost";
const SYNTAX: &str = "token_cost(provider, model, input_tokens, output_tokens [, cached_input_tokens [, cache_write_tokens [, ts [, service_tier [, cache_write_1h_tokens [, context_tokens]]]]]])";

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
         request when its input (context_tokens, default input_tokens) exceeds the model's \
         tier threshold; service_tier 'batch' \
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
    .with_argument(
        "context_tokens",
        "Input tokens of one request, which pick the long-context tier (default, or NULL: \
         input_tokens). For a row that sums many requests: their average, or what the \
         provider's context-window bucket says.",
    )
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
        check_arity(NAME, SYNTAX, arg_types.len(), 4, 10)?;
        const ARGS: [&str; 10] = [
            "provider",
            "model",
            "input_tokens",
            "output_tokens",
            "cached_input_tokens",
            "cache_write_tokens",
            "ts",
            "service_tier",
            "cache_write_1h_tokens",
            "context_tokens",
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
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let n = args
            .args
            .iter()
            .find_map(|a| match a {
                ColumnarValue::Array(a) => Some(a.len()),
                ColumnarValue::Scalar(_) => None,
            })
            .unwrap_or(1);
        let book = self.book.snapshot();
        let result = compute(&book, &args.args, n, now_micros())?;
        output(result, all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

/// Validity window of one price row: `from..=last` in UTC microseconds.
#[derive(Debug, Clone, Copy)]
struct Window<'b> {
    from: i64,
    last: i64,
    rates: Option<&'b RowRates>,
}

impl Window<'_> {
    /// The window of `row`; `None` when it covers no instant.
    fn of(book: &crate::PriceBook, row: u32) -> Option<Window<'_>> {
        let price = book.row(row);
        let last = match price.valid_to {
            None => i64::MAX,
            Some(i64::MIN) => return None,
            Some(to) => to - 1,
        };
        Some(Window {
            from: price.valid_from.unwrap_or(i64::MIN),
            last,
            rates: book.rates(row),
        })
    }

    #[inline]
    fn covers(&self, ts: i64) -> bool {
        self.from <= ts && ts <= self.last
    }
}

/// The prices of one distinct (provider, model) of a batch: its latest price row inline
/// (the one most rows fall in), earlier rows in `rest` of the batch's window list.
#[derive(Debug, Clone, Copy)]
struct KeyPrices<'b> {
    latest: Window<'b>,
    rest: (u32, u32),
}

/// An unpriced key: its window covers nothing.
const UNPRICED: KeyPrices<'static> = KeyPrices {
    latest: Window {
        from: i64::MAX,
        last: i64::MIN,
        rates: None,
    },
    rest: (0, 0),
};

/// Price windows of every distinct (provider, model) of a batch, resolved once per pair.
/// Without a `ts` column every row is priced at `now`, so each pair keeps only that row.
fn key_prices<'b>(
    book: &'b crate::PriceBook,
    keys: &[(&str, &str)],
    now: Option<i64>,
) -> (Vec<KeyPrices<'b>>, Vec<Window<'b>>) {
    let mut prices = Vec::with_capacity(keys.len());
    let mut windows = Vec::new();
    for &(provider, model) in keys {
        let Some(entry) = book.resolve(provider, model).map(|r| r.entry) else {
            prices.push(UNPRICED);
            continue;
        };
        if let Some(now) = now {
            let latest = book
                .row_index_at(entry, now)
                .map(|row| Window {
                    from: i64::MIN,
                    last: i64::MAX,
                    rates: book.rates(row),
                })
                .unwrap_or(UNPRICED.latest);
            prices.push(KeyPrices {
                latest,
                rest: (0, 0),
            });
            continue;
        }
        // Rows are sorted by `valid_from`: the last one is the latest.
        let mut rows = book
            .entry_rows(entry)
            .iter()
            .rev()
            .filter_map(|&row| Window::of(book, row));
        let latest = rows.next().unwrap_or(UNPRICED.latest);
        let start = windows.len() as u32;
        windows.extend(rows);
        prices.push(KeyPrices {
            latest,
            rest: (start, windows.len() as u32 - start),
        });
    }
    (prices, windows)
}

/// Costs of one batch of `n` rows. Provider and model are interned first (one hash probe per
/// row, see [`BatchKeys`]), each distinct pair is resolved once, and the row loop reads
/// only integers: no string work, allocation or book lookup per row.
fn compute(
    book: &crate::PriceBook,
    args: &[ColumnarValue],
    n: usize,
    now: i64,
) -> Result<ArrayRef> {
    let array = |i: usize| args.get(i).map(|a| a.to_array(n)).transpose();
    let (input, out, cached, cache_write) = (array(2)?, array(3)?, array(4)?, array(5)?);
    let (ts, tier, cache_write_1h) = (array(6)?, array(7)?, array(8)?);
    let context = array(9)?;

    let (provider_array, model_array);
    let keys = match (&args[0], &args[1]) {
        (ColumnarValue::Scalar(p), ColumnarValue::Scalar(m))
            if literal_text(Some(p)).is_some() && literal_text(Some(m)).is_some() =>
        {
            let pair = literal_text(Some(p))
                .flatten()
                .zip(literal_text(Some(m)).flatten());
            BatchKeys::constant(pair, n)
        }
        (p, m) => {
            provider_array = p.to_array(n)?;
            model_array = m.to_array(n)?;
            let (p, m) = (Text::new(&provider_array)?, Text::new(&model_array)?);
            BatchKeys::intern(&p, &m, n)
        }
    };
    let (prices, windows) = key_prices(book, &keys.keys, ts.is_none().then_some(now));

    let int = |a: &Option<ArrayRef>| a.as_ref().map(|a| a.as_primitive::<Int64Type>().clone());
    let (input, out) = (int(&input), int(&out));
    let (cached, cache_write, cache_write_1h) =
        (int(&cached), int(&cache_write), int(&cache_write_1h));
    // A NULL context is the row's input (not a NULL cost).
    let context = int(&context);
    let ts = ts
        .as_ref()
        .map(|a| a.as_primitive::<TimestampMicrosecondType>());
    let tier = tier.as_ref().map(Text::new).transpose()?;
    let tiers = tier.map(|t| map_short(&t, n, ServiceTier::parse));
    // A NULL count or ts makes the row NULL: one combined mask instead of a check per column.
    let nulls = [
        input.as_ref().and_then(|a| a.nulls()),
        out.as_ref().and_then(|a| a.nulls()),
        cached.as_ref().and_then(|a| a.nulls()),
        cache_write.as_ref().and_then(|a| a.nulls()),
        cache_write_1h.as_ref().and_then(|a| a.nulls()),
        ts.and_then(|a| a.nulls()),
    ]
    .into_iter()
    .fold(None, |acc: Option<NullBuffer>, next| {
        NullBuffer::union(acc.as_ref(), next)
    });
    fn values_of(a: &Option<Int64Array>, n: usize) -> Option<&[i64]> {
        a.as_ref().map(|a| &a.values()[..n])
    }
    let (input, out) = (values_of(&input, n), values_of(&out, n));
    let (cached, cache_write, cache_write_1h) = (
        values_of(&cached, n),
        values_of(&cache_write, n),
        values_of(&cache_write_1h, n),
    );
    let ts = ts.map(|a| &a.values()[..n]);
    let get = |col: Option<&[i64]>, i: usize| col.map_or(0, |c| c[i]);

    let mut values = vec![0i128; n];
    // Validity packed as it is computed, 64 rows a word.
    let mut valid = vec![0u64; n.div_ceil(64)];
    for (i, &key) in keys.rows.iter().enumerate() {
        if key == NO_KEY || nulls.as_ref().is_some_and(|b| b.is_null(i)) {
            continue;
        }
        let key = &prices[key as usize];
        let at = ts.map_or(now, |t| t[i]);
        let rates = if key.latest.covers(at) {
            key.latest.rates
        } else {
            let (start, len) = key.rest;
            windows[start as usize..(start + len) as usize]
                .iter()
                .find(|w| w.covers(at))
                .and_then(|w| w.rates)
        };
        let Some(rates) = rates else { continue };
        let row_input = get(input, i);
        let usage = TokenUsage {
            input: row_input,
            output: get(out, i),
            cached: get(cached, i),
            cache_write: get(cache_write, i),
            cache_write_1h: get(cache_write_1h, i),
            context: match &context {
                Some(c) if c.is_valid(i) => c.value(i),
                _ => row_input,
            },
        };
        let service_tier = match &tiers {
            Some(t) => t[i].unwrap_or(ServiceTier::Standard),
            None => ServiceTier::Standard,
        };
        if let Some(cost) = row_cost(rates, &usage, service_tier) {
            values[i] = cost;
            valid[i / 64] |= 1 << (i % 64);
        }
    }
    let valid = BooleanBuffer::new(Buffer::from_vec(valid), 0, n);
    money_array_with(values, NullBuffer::new(valid))
}
