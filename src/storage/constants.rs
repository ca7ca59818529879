//! Constant columns of a segment: columns that hold one value in every row (NULL included), found
//! while the segment is written and recorded in its manifest entry. A scan hands them to
//! DataFusion as exact file statistics, and its Parquet reader then reads each such column as the
//! value instead of decoding it. Usage segments have many: one ingest's `source` and
//! `service_tier`, a provider export's `provider`, token kinds a provider does not have (`0`),
//! and `reported_cost` or `tags` where nothing reports them (NULL). Decoding an all-NULL
//! `reported_cost` alone (16-byte decimals, converted one by one) costs a tenth of a pricing scan.
//!
//! It owns which values count as constant and how they become statistics. It must not read or
//! write files.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Int64Type, Schema};
use datafusion::common::stats::Precision;
use datafusion::common::{ColumnStatistics, ScalarValue, Statistics};
use serde_json::Value;

/// Column name to its value in every row of a segment: JSON `null` when every row is NULL, a
/// string for text columns, a number for `bigint` columns. Columns of other types are recorded
/// only when all NULL.
pub(crate) type Constants = BTreeMap<String, Value>;

/// What is known so far of one column across the batches written.
#[derive(Debug, Clone, PartialEq)]
enum State {
    /// No rows seen yet.
    Unseen,
    /// Every row seen holds this value.
    Same(Value),
    /// Two rows differ.
    Varies,
}

/// Finds the constant columns of the batches of one segment, as they are written.
#[derive(Debug, Default)]
pub(crate) struct ConstantTracker {
    /// Per column of the segment's schema, by position; empty until the first batch.
    columns: Vec<(String, State)>,
}

impl ConstantTracker {
    /// Take the rows of `batch` into account.
    pub(crate) fn observe(&mut self, batch: &RecordBatch) {
        if batch.num_rows() == 0 {
            return;
        }
        if self.columns.is_empty() {
            self.columns = batch
                .schema()
                .fields()
                .iter()
                .map(|f| (f.name().clone(), State::Unseen))
                .collect();
        }
        for ((_, state), column) in self.columns.iter_mut().zip(batch.columns()) {
            let next = match std::mem::replace(state, State::Varies) {
                State::Varies => State::Varies,
                State::Unseen => constant(column.as_ref()).map_or(State::Varies, State::Same),
                State::Same(value) => match constant(column.as_ref()) {
                    Some(other) if other == value => State::Same(value),
                    _ => State::Varies,
                },
            };
            *state = next;
        }
    }

    /// The constant columns of everything observed.
    pub(crate) fn finish(self) -> Constants {
        self.columns
            .into_iter()
            .filter_map(|(name, state)| match state {
                State::Same(value) => Some((name, value)),
                State::Unseen | State::Varies => None,
            })
            .collect()
    }
}

/// The constants of one batch (a segment written whole).
pub(crate) fn of_batch(batch: &RecordBatch) -> Constants {
    let mut tracker = ConstantTracker::default();
    tracker.observe(batch);
    tracker.finish()
}

/// The value every row of `array` (not empty) holds, if there is one and its type is recorded.
fn constant(array: &dyn Array) -> Option<Value> {
    let len = array.len();
    if array.null_count() == len {
        return Some(Value::Null);
    }
    if array.null_count() > 0 {
        return None;
    }
    match array.data_type() {
        DataType::Int64 => {
            let values = array.as_primitive::<Int64Type>().values();
            let first = values[0];
            values
                .iter()
                .all(|v| *v == first)
                .then(|| Value::from(first))
        }
        DataType::Utf8 => {
            let values = array.as_string::<i32>();
            let first = values.value(0);
            (1..len)
                .all(|i| values.value(i) == first)
                .then(|| Value::from(first))
        }
        DataType::Utf8View => {
            let values = array.as_string_view();
            let first = values.value(0);
            (1..len)
                .all(|i| values.value(i) == first)
                .then(|| Value::from(first))
        }
        _ => None,
    }
}

/// Exact statistics of a segment of `rows` rows whose columns `constants` are constant, over
/// `schema` (the scan's), or `None` when no column of `schema` is. A constant whose type does not
/// fit its column is left out: the column is then read as stored.
pub(crate) fn file_statistics(
    schema: &Schema,
    rows: u64,
    constants: &Constants,
) -> Option<Arc<Statistics>> {
    if constants.is_empty() {
        return None;
    }
    let rows = usize::try_from(rows).ok()?;
    let mut any = false;
    let column_statistics = schema
        .fields()
        .iter()
        .map(|field| {
            let Some(value) = constants.get(field.name()) else {
                return ColumnStatistics::new_unknown();
            };
            match scalar(value, field.data_type()) {
                Some(s) if s.is_null() => {
                    any = true;
                    ColumnStatistics::new_unknown().with_null_count(Precision::Exact(rows))
                }
                Some(s) => {
                    any = true;
                    ColumnStatistics::new_unknown()
                        .with_null_count(Precision::Exact(0))
                        .with_min_value(Precision::Exact(s.clone()))
                        .with_max_value(Precision::Exact(s))
                }
                None => ColumnStatistics::new_unknown(),
            }
        })
        .collect();
    any.then(|| {
        Arc::new(Statistics {
            num_rows: Precision::Exact(rows),
            total_byte_size: Precision::Absent,
            column_statistics,
        })
    })
}

/// A recorded constant as a value of `data_type`.
fn scalar(value: &Value, data_type: &DataType) -> Option<ScalarValue> {
    match (value, data_type) {
        (Value::Null, _) => ScalarValue::try_new_null(data_type).ok(),
        (Value::String(s), DataType::Utf8) => Some(ScalarValue::Utf8(Some(s.clone()))),
        (Value::String(s), DataType::Utf8View) => Some(ScalarValue::Utf8View(Some(s.clone()))),
        (Value::String(s), DataType::LargeUtf8) => Some(ScalarValue::LargeUtf8(Some(s.clone()))),
        (Value::Number(n), DataType::Int64) => Some(ScalarValue::Int64(Some(n.as_i64()?))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Decimal128Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::Field;

    use super::*;

    fn batch(source: Vec<Option<&str>>, tokens: Vec<Option<i64>>) -> RecordBatch {
        let cost = Decimal128Array::from(vec![None; source.len()])
            .with_precision_and_scale(38, 12)
            .expect("decimal type");
        RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("source", DataType::Utf8, true),
                Field::new("tokens", DataType::Int64, true),
                Field::new("cost", DataType::Decimal128(38, 12), true),
            ])),
            vec![
                Arc::new(StringArray::from(source)),
                Arc::new(Int64Array::from(tokens)),
                Arc::new(cost),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn constants_hold_across_batches_until_a_value_differs() {
        let mut tracker = ConstantTracker::default();
        tracker.observe(&batch(vec![Some("a"), Some("a")], vec![Some(0), Some(0)]));
        tracker.observe(&batch(vec![], vec![]));
        tracker.observe(&batch(vec![Some("a")], vec![Some(1)]));
        let found = tracker.finish();
        assert_eq!(found.get("source"), Some(&Value::from("a")));
        assert_eq!(found.get("tokens"), None, "0 then 1");
        assert_eq!(found.get("cost"), Some(&Value::Null));

        // NULL in some rows only, or a value after NULLs, is not constant.
        let mut tracker = ConstantTracker::default();
        tracker.observe(&batch(vec![Some("a"), None], vec![None, None]));
        tracker.observe(&batch(vec![Some("a")], vec![Some(3)]));
        let found = tracker.finish();
        assert_eq!(found.get("source"), None);
        assert_eq!(found.get("tokens"), None);

        // Differing in the middle of one batch.
        let found = of_batch(&batch(
            vec![Some("a"), Some("b"), Some("a")],
            vec![Some(5), Some(5), Some(5)],
        ));
        assert_eq!(found.get("source"), None);
        assert_eq!(found.get("tokens"), Some(&Value::from(5)));
        assert!(ConstantTracker::default().finish().is_empty());
    }

    #[test]
    fn statistics_describe_the_constants_in_the_scan_schema() {
        let schema = Schema::new(vec![
            Field::new("source", DataType::Utf8View, true),
            Field::new("tokens", DataType::Int64, true),
            Field::new("cost", DataType::Decimal128(38, 12), true),
            Field::new("other", DataType::Int64, true),
        ]);
        let constants: Constants = [
            ("source".to_string(), Value::from("bench")),
            ("tokens".to_string(), Value::from(0)),
            ("cost".to_string(), Value::Null),
        ]
        .into();
        let stats = file_statistics(&schema, 7, &constants).expect("constants found");
        assert_eq!(stats.num_rows, Precision::Exact(7));
        let c = &stats.column_statistics;
        assert_eq!(
            c[0].min_value,
            Precision::Exact(ScalarValue::Utf8View(Some("bench".into())))
        );
        assert_eq!(c[0].max_value, c[0].min_value);
        assert_eq!(c[0].null_count, Precision::Exact(0));
        assert_eq!(
            c[1].min_value,
            Precision::Exact(ScalarValue::Int64(Some(0)))
        );
        assert_eq!(c[2].null_count, Precision::Exact(7));
        assert_eq!(c[2].min_value, Precision::Absent);
        assert_eq!(c[3], ColumnStatistics::new_unknown());

        // A constant whose type no longer fits is ignored; nothing left means no statistics.
        let mismatched: Constants = [("other".to_string(), Value::from("text"))].into();
        assert!(file_statistics(&schema, 7, &mismatched).is_none());
        assert!(file_statistics(&schema, 7, &Constants::new()).is_none());
    }
}
