//! Price rows as Arrow: the schema of `finops.model_prices` and conversions both ways, so a
//! table can be seeded from the bundled catalog and a changed table turned back into a book.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Decimal128Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, Int64Type, Schema, SchemaRef, TimeUnit,
    TimestampMicrosecondType,
};
use datafusion::common::{DataFusionError, Result};

use super::row::{MatchKind, PriceKind, PriceRow};
use crate::money::{MONEY_PRECISION, MONEY_SCALE};

/// Price columns in table order (between `valid_to` and `tier_threshold_tokens`, then the
/// tier prices after it).
const LEADING_PRICES: [PriceKind; 11] = [
    PriceKind::Input,
    PriceKind::Output,
    PriceKind::CacheRead,
    PriceKind::CacheWrite,
    PriceKind::CacheWrite1h,
    PriceKind::BatchInput,
    PriceKind::BatchOutput,
    PriceKind::PriorityInput,
    PriceKind::PriorityOutput,
    PriceKind::FlexInput,
    PriceKind::FlexOutput,
];
const TIER_PRICES: [PriceKind; 4] = [
    PriceKind::TierInput,
    PriceKind::TierOutput,
    PriceKind::TierCacheRead,
    PriceKind::TierCacheWrite,
];

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let money = DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE);
    let mut fields = vec![
        Field::new("provider", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("match", DataType::Utf8, true),
        Field::new("valid_from", timestamp_type(), true),
        Field::new("valid_to", timestamp_type(), true),
    ];
    fields.extend(
        LEADING_PRICES
            .iter()
            .map(|k| Field::new(k.as_str(), money.clone(), true)),
    );
    fields.push(Field::new("tier_threshold_tokens", DataType::Int64, true));
    fields.extend(
        TIER_PRICES
            .iter()
            .map(|k| Field::new(k.as_str(), money.clone(), true)),
    );
    fields.push(Field::new("tier", DataType::Utf8, true));
    fields.push(Field::new("source", DataType::Utf8, true));
    Arc::new(Schema::new(fields))
});

/// Schema of `finops.model_prices`: prices `Decimal128(38, 12)` per million tokens,
/// validity as `timestamptz` (UTC microseconds).
pub fn price_rows_schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// `rows` as one batch of [`price_rows_schema`].
pub fn price_rows_to_batch(rows: &[PriceRow]) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&PriceRow) -> Option<&str>| -> ArrayRef {
        Arc::new(rows.iter().map(f).collect::<StringArray>())
    };
    let instant = |f: &dyn Fn(&PriceRow) -> Option<i64>| -> ArrayRef {
        Arc::new(
            rows.iter()
                .map(f)
                .collect::<TimestampMicrosecondArray>()
                .with_timezone("UTC"),
        )
    };
    let price = |kind: PriceKind| -> Result<ArrayRef> {
        let array = rows
            .iter()
            .map(|r| r.price(kind))
            .collect::<Decimal128Array>();
        Ok(Arc::new(
            array.with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)?,
        ))
    };
    let mut columns: Vec<ArrayRef> = vec![
        text(&|r| Some(r.provider.as_str())),
        text(&|r| Some(r.model.as_str())),
        text(&|r| Some(r.match_kind.unwrap_or(MatchKind::Exact).as_str())),
        instant(&|r| r.valid_from),
        instant(&|r| r.valid_to),
    ];
    for kind in LEADING_PRICES {
        columns.push(price(kind)?);
    }
    columns.push(Arc::new(
        rows.iter()
            .map(|r| r.tier_threshold_tokens)
            .collect::<Int64Array>(),
    ));
    for kind in TIER_PRICES {
        columns.push(price(kind)?);
    }
    columns.push(text(&|r| r.tier.as_deref()));
    columns.push(text(&|r| Some(r.source.as_str())));
    Ok(RecordBatch::try_new(price_rows_schema(), columns)?)
}

/// Reads price rows from a batch with (a superset or subset of) the columns of
/// [`price_rows_schema`], found by name; types are cast (any decimal scale, text or integer
/// kind, timestamp unit). `provider`, `model` and `input` are required.
pub fn price_rows_from_batch(batch: &RecordBatch) -> Result<Vec<PriceRow>> {
    let schema = price_rows_schema();
    let column = |name: &str| -> Result<Option<ArrayRef>> {
        let Ok(index) = batch.schema().index_of(name) else {
            return Ok(None);
        };
        let target = schema.field_with_name(name)?.data_type();
        Ok(Some(cast(batch.column(index), target)?))
    };
    let required = |name: &str| {
        column(name)?
            .ok_or_else(|| DataFusionError::Plan(format!("model prices: missing column `{name}`")))
    };
    let (provider, model, input) = (
        required("provider")?,
        required("model")?,
        required("input")?,
    );
    let match_col = column("match")?;
    let (from, to) = (column("valid_from")?, column("valid_to")?);
    let prices = LEADING_PRICES
        .iter()
        .chain(TIER_PRICES.iter())
        .map(|k| {
            Ok((
                *k,
                if *k == PriceKind::Input {
                    Some(input.clone())
                } else {
                    column(k.as_str())?
                },
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let (threshold, tier, source) = (
        column("tier_threshold_tokens")?,
        column("tier")?,
        column("source")?,
    );

    let text = |a: &Option<ArrayRef>, i: usize| -> Option<String> {
        let a = a.as_ref()?.as_string::<i32>();
        a.is_valid(i).then(|| a.value(i).to_string())
    };
    let instant = |a: &Option<ArrayRef>, i: usize| -> Option<i64> {
        let a = a.as_ref()?.as_primitive::<TimestampMicrosecondType>();
        a.is_valid(i).then(|| a.value(i))
    };
    let mut rows = Vec::with_capacity(batch.num_rows());
    for i in 0..batch.num_rows() {
        let match_kind = match text(&match_col, i) {
            None => MatchKind::Exact,
            Some(m) => MatchKind::parse(&m).ok_or_else(|| {
                DataFusionError::Plan(format!("model prices row {}: bad match `{m}`", i + 1))
            })?,
        };
        let mut row = PriceRow {
            provider: text(&Some(provider.clone()), i).unwrap_or_default(),
            model: text(&Some(model.clone()), i).unwrap_or_default(),
            match_kind: Some(match_kind),
            valid_from: instant(&from, i),
            valid_to: instant(&to, i),
            tier_threshold_tokens: threshold
                .as_ref()
                .map(|a| a.as_primitive::<Int64Type>())
                .and_then(|a| a.is_valid(i).then(|| a.value(i))),
            tier: text(&tier, i).filter(|t| !t.is_empty()),
            source: text(&source, i).unwrap_or_default(),
            ..PriceRow::default()
        };
        for (kind, array) in &prices {
            let value = array
                .as_ref()
                .map(|a| a.as_primitive::<Decimal128Type>())
                .and_then(|a| a.is_valid(i).then(|| a.value(i)));
            row.set_price(*kind, value);
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::{BUNDLED_CATALOG_CSV, parse_catalog_csv};

    #[test]
    fn bundled_rows_round_trip_through_arrow() {
        let rows = parse_catalog_csv(BUNDLED_CATALOG_CSV).expect("catalog");
        let batch = price_rows_to_batch(&rows).expect("batch");
        assert_eq!(batch.num_rows(), rows.len());
        assert_eq!(price_rows_from_batch(&batch).expect("rows"), rows);
    }
}
