//! The registry: every FinOps UDF is registered under its contract name with user docs, and
//! swapping the price book through the handle re-prices without re-registering.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::Decimal128Type;
use datafusion::prelude::SessionContext;
use finops_udfs::{PriceBook, PriceBookHandle, PriceRow, all_udfs, register_all};

#[test]
fn every_udf_has_its_contract_name_and_docs() {
    let handle = PriceBookHandle::bundled().expect("bundled book");
    let mut names: Vec<String> = all_udfs(handle)
        .iter()
        .map(|udf| {
            assert!(udf.documentation().is_some(), "{} has no docs", udf.name());
            udf.name().to_string()
        })
        .collect();
    names.sort();
    let expected = [
        "canonical_model",
        "cheaper_alternative",
        "count_tokens",
        "hamming_distance",
        "model_price",
        "model_tier",
        "month_end_forecast",
        "price_version",
        "prompt_fingerprint",
        "simhash",
        "token_cost",
    ];
    assert_eq!(names, expected);
}

async fn cost_of(ctx: &SessionContext) -> Option<i128> {
    let batches = ctx
        .sql("SELECT token_cost('acme', 'm-1', 1000000, 0)")
        .await
        .expect("plans")
        .collect()
        .await
        .expect("runs");
    let column = batches[0].column(0).as_primitive::<Decimal128Type>();
    column.is_valid(0).then(|| column.value(0))
}

fn book(input: i128) -> PriceBook {
    PriceBook::from_rows(vec![PriceRow {
        provider: "acme".into(),
        model: "m-1".into(),
        input: Some(input),
        output: Some(0),
        ..PriceRow::default()
    }])
    .expect("book")
}

#[tokio::test]
async fn replacing_the_book_reprices_the_next_query() {
    let handle = PriceBookHandle::new(book(1_000_000_000_000));
    let ctx = SessionContext::new();
    register_all(&ctx, handle.clone());
    assert_eq!(cost_of(&ctx).await, Some(1_000_000_000_000));
    handle.replace(book(2_000_000_000_000));
    assert_eq!(cost_of(&ctx).await, Some(2_000_000_000_000));
    handle.replace(PriceBook::from_rows(Vec::new()).expect("empty book"));
    assert_eq!(cost_of(&ctx).await, None);
}
