//! Behaviour of durable storage end to end: SQL through DataFusion, reopen, crash leftovers.
//!
//! Tests use scratch directories only and must not depend on timing.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    new_null_array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimestampMicrosecondType};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use super::*;
use crate::schema::{money_type, usage_events_schema};

mod recovery;
mod rewrite;
mod stage;
mod write;

const DAY_US: i64 = 86_400_000_000;

fn test_options() -> StorageOptions {
    StorageOptions {
        sync: true,
        flush_rows: 1_000_000,
        flush_statements: 1_000_000,
        stage_rows: 1_000_000,
        compaction_target_rows: 1_000,
        background_interval: None,
        gc_grace: Duration::ZERO,
    }
}

/// Usage rows `(event_id, ts in µs, requests)`, other columns NULL except provider/model.
fn usage_batch(rows: &[(&str, i64, Option<i64>)]) -> RecordBatch {
    let schema = usage_events_schema();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| -> ArrayRef {
            match f.name().as_str() {
                "event_id" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                "ts" => Arc::new(
                    TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.1))
                        .with_timezone("UTC"),
                ),
                "provider" => {
                    Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "openai")))
                }
                "model" => Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "gpt-4o"))),
                "requests" => Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2))),
                _ => new_null_array(f.data_type(), rows.len()),
            }
        })
        .collect();
    // Built against a nullable copy so NOT NULL can be violated on purpose.
    let nullable = Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(nullable, columns).expect("batch")
}

async fn open(dir: &std::path::Path) -> Arc<Storage> {
    Storage::open(dir.to_str().expect("utf-8 path"), test_options())
        .await
        .expect("open")
}

async fn usage_table(storage: &Storage) -> DurableTable {
    storage
        .ensure_table(
            "finops",
            "usage_events",
            usage_events_schema(),
            TableOptions::usage(),
        )
        .await
        .expect("usage table")
}

async fn query(table: &DurableTable, sql: &str) -> Vec<RecordBatch> {
    let ctx = SessionContext::new();
    ctx.register_table("t", Arc::new(table.clone()))
        .expect("register");
    ctx.sql(sql)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run")
}

async fn scalar_i64(table: &DurableTable, sql: &str) -> i64 {
    let batches = query(table, sql).await;
    let column = batches[0].column(0);
    match column.data_type() {
        DataType::Int64 => column
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0),
        DataType::UInt64 => column
            .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
            .value(0) as i64,
        other => panic!("unexpected type {other}"),
    }
}

async fn event_ids(table: &DurableTable) -> Vec<String> {
    let batches = query(table, "SELECT event_id FROM t ORDER BY event_id").await;
    batches
        .iter()
        .flat_map(|b| {
            datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8)
                .expect("text")
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or("").to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One segment per day, for days `0..days`.
async fn table_with_daily_segments(storage: &Storage, days: i64) -> DurableTable {
    let table = usage_table(storage).await;
    for day in 0..days {
        let ids: Vec<String> = (0..10).map(|i| format!("d{day}-{i}")).collect();
        let rows: Vec<(&str, i64, Option<i64>)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), day * DAY_US + i as i64, None))
            .collect();
        table
            .append(vec![usage_batch(&rows)])
            .await
            .expect("append");
        table.flush().await.expect("flush");
    }
    table
}
