//! Negotiated prices: `finops.price_adjustments` holds discounts (enterprise agreements,
//! committed-use deals) per provider or model with validity dates, and `adjusted_cost` applies
//! them to a list cost. `finops.usage.cost` is adjusted; `list_cost` is not.
//!
//! Owns the table's columns, their validation and the in-memory index the function reads,
//! swapped atomically after every change. It must not read or write storage.
//!
//! Semantics: of the adjustments valid at the row's `ts` (`valid_from` inclusive, `valid_to`
//! exclusive, NULL = open) for the row's provider, one naming the model (the reported id or its
//! catalog id, or a prefix of either written `prefix*`) beats a provider-wide one (model NULL);
//! among equals the latest `valid_from` wins. Discounts do not stack. The result is rounded half away from zero to 12 decimals.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use datafusion::common::{Result as DfResult, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use finops_udfs::PriceBookHandle;
use finops_udfs::pricing::canonical_provider;

use crate::error::{Error, Result, arrow_error};
use crate::schema::{MONEY_SCALE, money_type, timestamp_type};

/// `(schema, table)` of the adjustments.
pub const PRICE_ADJUSTMENTS: (&str, &str) = ("finops", "price_adjustments");

/// Scale of `discount_pct`.
const PCT_SCALE: i8 = 4;
const PCT_ONE_HUNDRED: i128 = 100 * 10_i128.pow(PCT_SCALE as u32);

/// Columns of `finops.price_adjustments`.
pub fn adjustments_schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("adjustment_id", DataType::Utf8, false),
        Field::new("provider", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, true),
        Field::new("discount_pct", DataType::Decimal128(9, PCT_SCALE), false),
        Field::new("valid_from", timestamp_type(), true),
        Field::new("valid_to", timestamp_type(), true),
        Field::new("description", DataType::Utf8, true),
    ]))
});

/// One validated adjustment.
#[derive(Debug, Clone)]
struct Adjustment {
    id: String,
    model: Option<String>,
    /// Discount in percent at [`PCT_SCALE`].
    pct: i128,
    from: Option<i64>,
    to: Option<i64>,
}

impl Adjustment {
    fn valid_at(&self, ts: i64) -> bool {
        self.from.is_none_or(|f| f <= ts) && self.to.is_none_or(|t| ts < t)
    }
}

/// The adjustments by canonical provider.
#[derive(Debug, Default)]
pub struct Adjustments {
    by_provider: HashMap<String, Vec<Adjustment>>,
}

impl Adjustments {
    /// Validate and index the rows of `batches` (the table's schema): a discount outside 0–100 %,
    /// `valid_to` not after `valid_from`, an empty provider or a duplicate `adjustment_id` is
    /// rejected (SQLSTATE 23514), naming the adjustment.
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Adjustments> {
        let mut by_provider: HashMap<String, Vec<Adjustment>> = HashMap::new();
        let mut ids = std::collections::HashSet::new();
        for batch in batches {
            let column = |name: &str, ty: &DataType| -> Result<ArrayRef> {
                let c = batch.column_by_name(name).ok_or_else(|| {
                    Error::Internal(format!("price adjustments without column {name}"))
                })?;
                cast(c, ty).map_err(arrow_error)
            };
            let ts_type = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
            let (id, provider, model) = (
                column("adjustment_id", &DataType::Utf8)?,
                column("provider", &DataType::Utf8)?,
                column("model", &DataType::Utf8)?,
            );
            let pct = column("discount_pct", &DataType::Decimal128(38, PCT_SCALE))?;
            let (from, to) = (
                column("valid_from", &ts_type)?,
                column("valid_to", &ts_type)?,
            );
            let (id, provider, model) = (
                id.as_string::<i32>(),
                provider.as_string::<i32>(),
                model.as_string::<i32>(),
            );
            let pct = pct.as_primitive::<Decimal128Type>();
            let from = from.as_primitive::<TimestampMicrosecondType>();
            let to = to.as_primitive::<TimestampMicrosecondType>();
            for i in 0..batch.num_rows() {
                let adjustment_id = if id.is_valid(i) { id.value(i) } else { "" };
                let invalid = |why: &str| Error::CheckViolation {
                    message: format!(
                        "finops.price_adjustments: adjustment '{adjustment_id}' {why}"
                    ),
                };
                if !ids.insert(adjustment_id.to_string()) {
                    return Err(invalid("is a duplicate adjustment_id"));
                }
                let provider = (provider.is_valid(i) && !provider.value(i).trim().is_empty())
                    .then(|| canonical_provider(provider.value(i)))
                    .ok_or_else(|| invalid("has no provider"))?;
                let pct = pct
                    .is_valid(i)
                    .then(|| pct.value(i))
                    .ok_or_else(|| invalid("has no discount_pct"))?;
                if !(0..=PCT_ONE_HUNDRED).contains(&pct) {
                    return Err(invalid("has a discount_pct outside 0..100"));
                }
                let adjustment = Adjustment {
                    id: adjustment_id.to_string(),
                    model: (model.is_valid(i) && !model.value(i).is_empty())
                        .then(|| model.value(i).to_string()),
                    pct,
                    from: from.is_valid(i).then(|| from.value(i)),
                    to: to.is_valid(i).then(|| to.value(i)),
                };
                if let (Some(f), Some(t)) = (adjustment.from, adjustment.to)
                    && t <= f
                {
                    return Err(invalid("has valid_to <= valid_from"));
                }
                by_provider.entry(provider).or_default().push(adjustment);
            }
        }
        Ok(Adjustments { by_provider })
    }

    /// Whether there are no adjustments.
    pub fn is_empty(&self) -> bool {
        self.by_provider.is_empty()
    }

    /// The adjustment for one row: `models` are the reported id and its catalog id.
    fn find(&self, provider: &str, models: &[&str], ts: i64) -> Option<&Adjustment> {
        let candidates = self.by_provider.get(provider)?;
        candidates
            .iter()
            .filter(|a| a.valid_at(ts))
            .filter(|a| a.model.as_deref().is_none_or(|m| model_matches(m, models)))
            .max_by(|a, b| {
                (a.model.is_some(), a.from, std::cmp::Reverse(&a.id)).cmp(&(
                    b.model.is_some(),
                    b.from,
                    std::cmp::Reverse(&b.id),
                ))
            })
    }
}

/// Whether an adjustment's `model` covers a row: the reported id or its catalog id, exactly, or
/// by prefix when the adjustment's model ends in `*` (`gpt-4o-2024*`).
fn model_matches(pattern: &str, models: &[&str]) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => models.iter().any(|m| m.starts_with(prefix)),
        None => models.contains(&pattern),
    }
}

/// Shared, atomically swappable reference to the current adjustments.
pub type AdjustmentsHandle = crate::swap::Swap<Adjustments>;

/// `list_cost * (100 - pct) / 100`, at money scale, rounded half away from zero.
fn apply(list_cost: i128, pct: i128) -> Option<i128> {
    let keep = PCT_ONE_HUNDRED - pct;
    match list_cost.checked_mul(keep) {
        Some(product) => finops_udfs::money::div_round(product, PCT_ONE_HUNDRED),
        None => (list_cost / PCT_ONE_HUNDRED).checked_mul(keep),
    }
}

const NAME: &str = "adjusted_cost";
const SYNTAX: &str = "adjusted_cost(list_cost, provider, model, ts)";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        finops_udfs::FINOPS_SECTION,
        "`list_cost` after the negotiated discount of `finops.price_adjustments` valid at `ts` \
         for the provider and model (a model-specific adjustment beats a provider-wide one; \
         discounts do not stack). NULL when `list_cost` is NULL.",
        SYNTAX,
    )
    .with_sql_example(
        "SELECT adjusted_cost(list_cost, provider, model, ts) FROM finops.usage LIMIT 1;",
    )
    .with_related_udf("token_cost")
    .build()
});

/// `adjusted_cost`: list cost after the current adjustments.
#[derive(Debug)]
pub struct AdjustedCostFunc {
    signature: Signature,
    adjustments: AdjustmentsHandle,
    prices: PriceBookHandle,
}

impl PartialEq for AdjustedCostFunc {
    fn eq(&self, other: &Self) -> bool {
        self.adjustments.same_slot(&other.adjustments) && self.prices.same_slot(&other.prices)
    }
}

impl Eq for AdjustedCostFunc {}

impl std::hash::Hash for AdjustedCostFunc {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NAME.hash(state);
        self.adjustments.slot_id().hash(state);
        self.prices.slot_id().hash(state);
    }
}

impl AdjustedCostFunc {
    /// The function reading `adjustments`, resolving model ids with `prices`.
    pub fn udf(adjustments: AdjustmentsHandle, prices: PriceBookHandle) -> ScalarUDF {
        ScalarUDF::from(AdjustedCostFunc {
            signature: Signature::user_defined(Volatility::Stable),
            adjustments,
            prices,
        })
    }
}

impl ScalarUDFImpl for AdjustedCostFunc {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(money_type())
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if arg_types.len() != 4 {
            return exec_err!("{NAME} takes 4 arguments: {SYNTAX}");
        }
        // Text stays as it comes (a cast of every row's provider and model would cost more
        // than the lookup, which only runs when an adjustment exists).
        Ok(vec![
            money_type(),
            crate::schema::text_as_given(&arg_types[1]),
            crate::schema::text_as_given(&arg_types[2]),
            timestamp_type(),
        ])
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let arrays = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<DfResult<Vec<_>>>()?;
        let cost = cast(&arrays[0], &money_type())?;
        let cost = cost.as_primitive::<Decimal128Type>();
        let adjustments = self.adjustments.snapshot();
        if adjustments.is_empty() {
            return Ok(ColumnarValue::Array(Arc::new(cost.clone())));
        }
        let provider = cast(&arrays[1], &DataType::Utf8)?;
        let model = cast(&arrays[2], &DataType::Utf8)?;
        let ts = cast(&arrays[3], &timestamp_type())?;
        let (provider, model) = (provider.as_string::<i32>(), model.as_string::<i32>());
        let ts = ts.as_primitive::<TimestampMicrosecondType>();
        let book = self.prices.snapshot();
        let out: Decimal128Array = (0..rows)
            .map(|i| {
                if cost.is_null(i) {
                    return None;
                }
                let list = cost.value(i);
                if provider.is_null(i) || ts.is_null(i) {
                    return Some(list);
                }
                let p = canonical_provider(provider.value(i));
                let reported = if model.is_valid(i) {
                    model.value(i)
                } else {
                    ""
                };
                let canonical = book.resolve(&p, reported).map(|r| r.canonical);
                let models = [reported, canonical.as_deref().unwrap_or(reported)];
                match adjustments.find(&p, &models, ts.value(i)) {
                    Some(a) => apply(list, a.pct),
                    None => Some(list),
                }
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(
            out.with_precision_and_scale(crate::schema::MONEY_PRECISION, MONEY_SCALE)?,
        )))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{StringArray, TimestampMicrosecondArray};

    use super::*;

    type Row<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        i128,
        Option<i64>,
        Option<i64>,
    );

    fn adjustments(rows: &[Row<'_>]) -> Result<Adjustments> {
        let text = |v: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(v)) };
        let ts = |v: Vec<Option<i64>>| -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
        };
        let batch = RecordBatch::try_new(
            adjustments_schema(),
            vec![
                text(rows.iter().map(|r| Some(r.0)).collect()),
                text(rows.iter().map(|r| Some(r.1)).collect()),
                text(rows.iter().map(|r| r.2).collect()),
                Arc::new(
                    Decimal128Array::from(rows.iter().map(|r| r.3).collect::<Vec<_>>())
                        .with_precision_and_scale(9, PCT_SCALE)
                        .map_err(arrow_error)?,
                ),
                ts(rows.iter().map(|r| r.4).collect()),
                ts(rows.iter().map(|r| r.5).collect()),
                text(rows.iter().map(|_| None).collect()),
            ],
        )
        .map_err(arrow_error)?;
        Adjustments::from_batches(&[batch])
    }

    #[test]
    fn model_specific_beats_provider_wide_and_dates_bound_it() {
        let set = adjustments(&[
            ("wide", "openai", None, 100_000, None, None),
            (
                "gpt",
                "openai",
                Some("gpt-4o"),
                250_000,
                Some(100),
                Some(200),
            ),
        ])
        .expect("valid");
        assert_eq!(
            set.find("openai", &["gpt-4o"], 150).map(|a| a.id.as_str()),
            Some("gpt")
        );
        assert_eq!(
            set.find("openai", &["gpt-4o"], 200).map(|a| a.id.as_str()),
            Some("wide")
        );
        assert_eq!(
            set.find("openai", &["o3"], 150).map(|a| a.id.as_str()),
            Some("wide")
        );
        assert!(set.find("anthropic", &["claude"], 150).is_none());
        let prefix =
            adjustments(&[("p", "openai", Some("gpt-4o-2024*"), 1, None, None)]).expect("valid");
        assert!(prefix.find("openai", &["gpt-4o-2024-08-06"], 0).is_some());
        assert!(prefix.find("openai", &["gpt-4o-mini"], 0).is_none());
    }

    #[test]
    fn discount_is_exact() {
        // 12.5 % off $1.000000000001 = 0.875000000000875 → rounded to 12 decimals.
        assert_eq!(apply(1_000_000_000_001, 125_000), Some(875_000_000_001));
        assert_eq!(apply(1_000_000_000_000, 0), Some(1_000_000_000_000));
        assert_eq!(apply(1_000_000_000_000, PCT_ONE_HUNDRED), Some(0));
    }

    #[test]
    fn invalid_adjustments_are_rejected() {
        let err = adjustments(&[("x", "openai", None, 1_000_001, None, None)]).expect_err("pct");
        assert!(err.to_string().contains("'x'"), "{err}");
        let err = adjustments(&[("y", "openai", None, 1, Some(5), Some(5))]).expect_err("dates");
        assert!(err.to_string().contains("valid_to"), "{err}");
        let err = adjustments(&[
            ("z", "openai", None, 1, None, None),
            ("z", "anthropic", None, 1, None, None),
        ])
        .expect_err("duplicate");
        assert!(err.to_string().contains("duplicate"), "{err}");
    }
}
