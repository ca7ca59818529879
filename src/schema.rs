//! Canonical Arrow schemas: the single source of truth for the columns of finops-db's own tables.
//!
//! Owns column names, types and nullability. It must not know where data comes from or how it is
//! stored; providers, storage and SQL objects all take their columns from here.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Precision of every money column (`NUMERIC` on the wire).
pub const MONEY_PRECISION: u8 = 38;
/// Scale of every money column: 12 decimal places keep a single token of the cheapest model exact.
pub const MONEY_SCALE: i8 = 12;

/// The Arrow type of money: exact decimal, never float.
pub fn money_type() -> DataType {
    DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE)
}

/// The Arrow type of every timestamp: microseconds, UTC (`timestamptz`).
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Name of the native usage table inside the `finops` schema.
pub const USAGE_EVENTS: &str = "usage_events";

/// Columns of `finops.usage_events` (SPEC 3.1), in order.
pub static USAGE_EVENTS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    let count = |name: &str| Field::new(name, DataType::Int64, true);
    Arc::new(Schema::new(vec![
        text("event_id", false),
        Field::new("ts", timestamp_type(), false),
        text("provider", false),
        text("model", false),
        text("team", true),
        text("app", true),
        text("feature", true),
        text("user_id", true),
        text("api_key_id", true),
        text("project", true),
        text("environment", true),
        count("input_tokens"),
        count("cached_input_tokens"),
        count("cache_write_tokens"),
        count("output_tokens"),
        count("reasoning_tokens"),
        count("requests"),
        text("service_tier", true),
        count("latency_ms"),
        text("status", true),
        text("prompt_hash", true),
        Field::new("reported_cost", money_type(), true),
        text("tags", true),
        text("source", true),
    ]))
});

/// The schema of `finops.usage_events` as stored and written.
pub fn usage_events_schema() -> SchemaRef {
    Arc::clone(&USAGE_EVENTS_SCHEMA)
}

/// `schema` with every `Utf8` column as `Utf8View`: the schema usage tables are scanned with.
///
/// Views point into the decoded Parquet pages (no per-row copy of dictionary-encoded text) and
/// make grouping and hashing by text cheaper; it is what DataFusion itself reads Parquet text
/// as. Writers keep building `Utf8`.
pub fn view_types(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The type a function argument is coerced to where it takes text: any text type as it is
/// (a cast of `Utf8View` to `Utf8` copies every string), anything else `Utf8`.
pub fn text_as_given(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => data_type.clone(),
        _ => DataType::Utf8,
    }
}

/// `batch` cast column by column to `schema` (same column count; used between the stored and
/// the scan shape of a table, where only text types differ).
pub fn cast_batch(
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> datafusion::arrow::error::Result<RecordBatch> {
    if batch.schema_ref() == schema {
        return Ok(batch.clone());
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                datafusion::arrow::compute::cast(column, field.data_type())
            }
        })
        .collect::<datafusion::arrow::error::Result<Vec<_>>>()?;
    RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_events_columns_match_spec() {
        let schema = usage_events_schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names.len(), 24);
        assert_eq!(&names[..4], &["event_id", "ts", "provider", "model"]);
        for required in ["event_id", "ts", "provider", "model"] {
            assert!(
                !schema
                    .field_with_name(required)
                    .expect("column")
                    .is_nullable()
            );
        }
        assert_eq!(
            schema
                .field_with_name("reported_cost")
                .expect("column")
                .data_type(),
            &money_type()
        );
    }
}
