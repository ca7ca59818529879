//! Pricing usage rows at their request time: `token_cost(..., ts)` against the equivalent
//! SQL range join to a price table, in one DataFusion `SessionContext` over in-memory tables.
//!
//! Scale: 1,000,000 usage rows (the issue asks 10M; 1M keeps one criterion run of both
//! queries within a couple of minutes on 2 cores, and both sides scale linearly) drawn from
//! the ~30 models of [`MODELS`] with timestamps over 2025, in 8,192-row batches, one
//! partition (`target_partitions = 1`, one core).
//!
//! The price table holds, for every (provider, model) of the usage, the book's rows for the
//! catalog entry that model resolves to: the join gets pre-resolved ids, its best case.
//! Input counts stay below 128k tokens, the lowest long-context threshold of the catalog, as
//! the join has no tier logic. Both queries sum the per-row cost
//! `input * input_price + output * output_price` as exact decimals (the table holds
//! per-token prices as `NUMERIC(38,18)`: the book's per-million price at scale 12 is the same
//! integer), rounded to 12 decimals per row; both sums are printed and asserted equal
//! before timing.
//!
//! A model without an output price (`text-embedding-3-small`: input 0.02 USD per million,
//! output empty in the catalog) is priced by `token_cost` when the row has no output tokens
//! (output cost 0) and is NULL otherwise. A join summing `output_tokens * price_out` makes
//! the zero-output rows NULL too, and `SUM` skips them: on this data 9 such rows,
//! 746,056 input tokens, 0.014921120 USD, which the join once left out (159,589.366771540
//! against 159,589.381692660 USD). The join therefore takes the output term as 0 when
//! `output_tokens = 0`; both sums are now 159,589.381692660 USD.

use std::sync::Arc;

use criterion::{Criterion, Throughput};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::array::{
    ArrayRef, Decimal128Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, Field, Schema, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use finops_udfs::{PriceBook, PriceBookHandle, register_all};

use super::harness::{Lcg, MODELS};

/// Usage rows priced per iteration.
pub const ROWS: usize = 1_000_000;
const BATCH: usize = 8192;

const UDF_SQL: &str = "SELECT SUM(token_cost(provider, model, input_tokens, output_tokens, 0, 0, ts)) \
     FROM usage";
/// A NULL `price_out` with no output tokens costs nothing (embedding models), as in
/// `token_cost`; `u.output_tokens * p.price_out` alone would make those rows NULL.
const JOIN_SQL: &str = "SELECT SUM(CAST(u.input_tokens * p.price_in \
     + CASE WHEN u.output_tokens = 0 THEN CAST(0 AS DECIMAL(38, 18)) \
     ELSE u.output_tokens * p.price_out END \
     AS DECIMAL(38, 12))) \
     FROM usage u JOIN prices p ON p.provider = u.provider AND p.model = u.model \
     AND u.ts >= p.valid_from AND (p.valid_to IS NULL OR u.ts < p.valid_to)";

fn usage_table() -> MemTable {
    let schema = Arc::new(Schema::new(vec![
        Field::new("provider", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("input_tokens", DataType::Int64, false),
        Field::new("output_tokens", DataType::Int64, false),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
    ]));
    let mut rng = Lcg(1);
    let start = 1_735_689_600_000_000i64; // 2025-01-01T00:00:00Z
    let year = 365 * 86_400_000_000u64;
    let mut batches = Vec::new();
    let mut done = 0;
    while done < ROWS {
        let n = BATCH.min(ROWS - done);
        let picks: Vec<(&str, &str)> = (0..n)
            .map(|_| MODELS[rng.below(MODELS.len() as u64) as usize])
            .collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(picks.iter().map(|p| p.0))),
            Arc::new(StringArray::from_iter_values(picks.iter().map(|p| p.1))),
            Arc::new(Int64Array::from_iter_values(
                (0..n).map(|_| rng.below(120_000) as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                (0..n).map(|_| rng.below(4_000) as i64),
            )),
            Arc::new(TimestampMicrosecondArray::from_iter_values(
                (0..n).map(|_| start + rng.below(year) as i64),
            )),
        ];
        batches.push(RecordBatch::try_new(Arc::clone(&schema), columns).expect("batch"));
        done += n;
    }
    MemTable::try_new(schema, vec![batches]).expect("usage table")
}

/// The book's rows for every (provider, model) of [`MODELS`], keyed by the reported ids.
fn prices_table(book: &PriceBook) -> MemTable {
    let (mut provider, mut model, mut from, mut to, mut price_in, mut price_out) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (p, m) in MODELS {
        let Some(resolved) = book.resolve(p, m) else {
            continue;
        };
        for &r in book.entry_rows(resolved.entry) {
            let row = book.row(r);
            provider.push(*p);
            model.push(*m);
            from.push(row.valid_from.unwrap_or(0));
            to.push(row.valid_to);
            price_in.push(row.input);
            price_out.push(row.output);
        }
    }
    let money = |v: Vec<Option<i128>>| -> ArrayRef {
        Arc::new(
            Decimal128Array::from(v)
                .with_precision_and_scale(38, 18)
                .expect("decimal"),
        )
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(provider)),
        Arc::new(StringArray::from(model)),
        Arc::new(TimestampMicrosecondArray::from(from)),
        Arc::new(TimestampMicrosecondArray::from(to)),
        money(price_in),
        money(price_out),
    ];
    let schema = Arc::new(Schema::new(vec![
        Field::new("provider", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new(
            "valid_from",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        Field::new(
            "valid_to",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ),
        Field::new("price_in", DataType::Decimal128(38, 18), true),
        Field::new("price_out", DataType::Decimal128(38, 18), true),
    ]));
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns).expect("prices batch");
    MemTable::try_new(schema, vec![vec![batch]]).expect("prices table")
}

async fn sum(ctx: &SessionContext, sql: &str) -> Option<i128> {
    let batches = ctx
        .sql(sql)
        .await
        .expect("plans")
        .collect()
        .await
        .expect("runs");
    let column = batches[0].column(0);
    match column.data_type() {
        DataType::Decimal128(_, 12) => {
            let sums = column.as_primitive::<Decimal128Type>();
            sums.is_valid(0).then(|| sums.value(0))
        }
        other => panic!("unexpected sum type {other}"),
    }
}

/// Registers the `token_cost` against range join benches.
pub fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let book = PriceBook::bundled().expect("bundled book");
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1));
    ctx.register_table("usage", Arc::new(usage_table()))
        .expect("usage");
    ctx.register_table("prices", Arc::new(prices_table(&book)))
        .expect("prices");
    register_all(&ctx, PriceBookHandle::new(book));

    let (udf, join) =
        runtime.block_on(async { (sum(&ctx, UDF_SQL).await, sum(&ctx, JOIN_SQL).await) });
    eprintln!("token_cost_vs_join: sums {udf:?} (token_cost) and {join:?} (join), USD at scale 12");
    assert_eq!(
        udf, join,
        "token_cost and the range join price the usage differently"
    );

    let mut g = c.benchmark_group("token_cost_vs_join");
    g.sample_size(10);
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("token_cost_udf/1M", |b| {
        b.to_async(&runtime).iter(|| sum(&ctx, UDF_SQL))
    });
    g.bench_function("sql_range_join/1M", |b| {
        b.to_async(&runtime).iter(|| sum(&ctx, JOIN_SQL))
    });
    g.finish();
}
