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

const DAY_US: i64 = 86_400_000_000;

fn test_options() -> StorageOptions {
    StorageOptions {
        sync: true,
        flush_rows: 1_000_000,
        flush_statements: 1_000_000,
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
            b.column(0)
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or("").to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn append_then_scan_round_trips_and_defaults_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(dir.path()).await;
    let table = usage_table(&storage).await;
    let n = table
        .append(vec![usage_batch(&[("a", 1, Some(3)), ("b", 2, None)])])
        .await
        .expect("append");
    assert_eq!(n, 2);
    assert_eq!(event_ids(&table).await, ["a", "b"]);
    assert_eq!(scalar_i64(&table, "SELECT sum(requests) FROM t").await, 4);
    table.flush().await.expect("flush");
    assert_eq!(table.stats().wal_rows, 0);
    assert_eq!(scalar_i64(&table, "SELECT sum(requests) FROM t").await, 4);
}

#[tokio::test]
async fn sql_insert_values_and_select_count_inserted_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(dir.path()).await;
    let table = usage_table(&storage).await;
    let ctx = SessionContext::new();
    ctx.register_table("t", Arc::new(table.clone()))
        .expect("register");
    let insert = "INSERT INTO t (event_id, ts, provider, model, input_tokens) VALUES \
        ('r1', '2026-01-01T00:00:00Z', 'openai', 'gpt-4o', 10), \
        ('r2', '2026-01-02T00:00:00Z', 'anthropic', 'claude', 20), \
        ('r1', '2026-01-03T00:00:00Z', 'openai', 'gpt-4o', 30)";
    let out = ctx
        .sql(insert)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    assert_eq!(
        out[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
            .value(0),
        2
    );
    // Same statement again: nothing new.
    let out = ctx
        .sql(insert)
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    assert_eq!(
        out[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
            .value(0),
        0
    );
    assert_eq!(
        scalar_i64(&table, "SELECT sum(input_tokens) FROM t").await,
        30
    );
    assert_eq!(scalar_i64(&table, "SELECT sum(requests) FROM t").await, 2);
    // INSERT ... SELECT from the table itself only finds duplicates.
    let out = ctx
        .sql("INSERT INTO t SELECT * FROM t")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    assert_eq!(
        out[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
            .value(0),
        0
    );
}

#[tokio::test]
async fn duplicate_event_ids_are_skipped_within_statement_and_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let storage = open(dir.path()).await;
        let table = usage_table(&storage).await;
        let n = table
            .append(vec![
                usage_batch(&[("a", 1, None), ("a", 2, None)]),
                usage_batch(&[("a", 3, None), ("b", 4, None)]),
            ])
            .await
            .expect("append");
        assert_eq!(n, 2);
        table.flush().await.expect("flush");
        assert_eq!(
            table
                .append(vec![usage_batch(&[("c", 5, None)])])
                .await
                .expect("append"),
            1
        );
    }
    let storage = open(dir.path()).await;
    let table = usage_table(&storage).await;
    // "a" is in a segment, "c" only in the replayed WAL.
    let n = table
        .append(vec![usage_batch(&[
            ("a", 9, None),
            ("c", 9, None),
            ("d", 9, None),
        ])])
        .await
        .expect("append");
    assert_eq!(n, 1);
    assert_eq!(event_ids(&table).await, ["a", "b", "c", "d"]);
}

#[tokio::test]
async fn null_in_not_null_column_rejects_whole_statement() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(dir.path()).await;
    let table = usage_table(&storage).await;
    let mut bad = usage_batch(&[("x", 1, None), ("y", 2, None)]);
    let mut columns = bad.columns().to_vec();
    columns[3] = Arc::new(StringArray::from(vec![Some("m"), None]));
    bad = RecordBatch::try_new(bad.schema(), columns).expect("batch");
    let err = table
        .append(vec![usage_batch(&[("ok", 1, None)]), bad])
        .await
        .expect_err("must fail");
    let message = err.to_string();
    assert!(matches!(err, Error::NotNullViolation { .. }), "{message}");
    assert!(
        message.contains("\"model\"") && message.contains("row 3"),
        "{message}"
    );
    assert_eq!(table.stats().wal_rows, 0);
    assert!(event_ids(&table).await.is_empty());
}

#[tokio::test]
async fn failed_wal_write_leaves_nothing_and_table_keeps_working() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(dir.path()).await;
    let table = usage_table(&storage).await;
    // A file where the WAL directory should be makes the write fail like a broken disk would.
    let wal_dir = storage
        .backend
        .local_path(&table.core.dir.clone().join("wal"))
        .expect("local");
    std::fs::create_dir_all(wal_dir.parent().expect("table dir")).expect("mkdir");
    std::fs::write(&wal_dir, b"in the way").expect("block");
    let err = table.append(vec![usage_batch(&[("a", 1, None)])]).await;
    assert!(err.is_err());
    assert!(event_ids(&table).await.is_empty());
    std::fs::remove_file(&wal_dir).expect("unblock");
    // The failed row was not remembered as stored.
    assert_eq!(
        table
            .append(vec![usage_batch(&[("a", 1, None)])])
            .await
            .expect("append"),
        1
    );
    drop(table);
    drop(storage);
    let storage = open(dir.path()).await;
    assert_eq!(event_ids(&usage_table(&storage).await).await, ["a"]);
}

#[tokio::test]
async fn torn_wal_tail_is_dropped_on_recovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wal_file;
    {
        let storage = open(dir.path()).await;
        let table = usage_table(&storage).await;
        table
            .append(vec![usage_batch(&[("a", 1, None)])])
            .await
            .expect("append");
        table
            .append(vec![usage_batch(&[("b", 2, None)])])
            .await
            .expect("append");
        let wal_dir = storage
            .backend
            .local_path(&table.core.dir.clone().join("wal"))
            .expect("local");
        let mut files: Vec<_> = std::fs::read_dir(&wal_dir)
            .expect("wal dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        wal_file = files.pop().expect("a WAL file");
    }
    let len = std::fs::metadata(&wal_file).expect("meta").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&wal_file)
        .expect("open");
    file.set_len(len - 3).expect("truncate");
    drop(file);
    let storage = open(dir.path()).await;
    let table = usage_table(&storage).await;
    assert_eq!(event_ids(&table).await, ["a"]);
    // "b" was never durable, so it is new now; later records must survive another reopen.
    assert_eq!(
        table
            .append(vec![usage_batch(&[("b", 2, None)])])
            .await
            .expect("append"),
        1
    );
    drop(table);
    drop(storage);
    let storage = open(dir.path()).await;
    assert_eq!(event_ids(&usage_table(&storage).await).await, ["a", "b"]);
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

#[tokio::test]
async fn delete_rewrites_only_segments_with_matching_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(dir.path()).await;
    let table = table_with_daily_segments(&storage, 3).await;
    let before = table.stats().segment_paths;
    assert_eq!(before.len(), 3);
    let ctx = SessionContext::new();
    ctx.register_table("t", Arc::new(table.clone()))
        .expect("register");
    let out = ctx
        .sql("DELETE FROM t WHERE ts >= to_timestamp_micros(172800000000) AND event_id <> 'd2-0'")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    assert_eq!(
        out[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
            .value(0),
        9
    );
    let after = table.stats().segment_paths;
    assert_eq!(after.len(), 3);
    assert_eq!(after[..2], before[..2], "untouched days keep their files");
    assert_ne!(after[2], before[2]);
    assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 21);
    // A deleted event id may be ingested again.
    assert_eq!(
        table
            .append(vec![usage_batch(&[("d2-5", 5, None)])])
            .await
            .expect("append"),
        1
    );
    drop(ctx);
    drop(table);
    drop(storage);
    let storage = open(dir.path()).await;
    assert_eq!(
        scalar_i64(&usage_table(&storage).await, "SELECT count(*) FROM t").await,
        22
    );
}

#[tokio::test]
async fn time_filter_prunes_segments() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(dir.path()).await;
    let table = table_with_daily_segments(&storage, 4).await;
    let batches = query(
        &table,
        "EXPLAIN SELECT count(*) FROM t WHERE ts >= to_timestamp_micros(259200000000)",
    )
    .await;
    let plan = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .expect("format")
        .to_string();
    assert_eq!(plan.matches(".parquet").count(), 1, "{plan}");
    assert_eq!(
        scalar_i64(
            &table,
            "SELECT count(*) FROM t WHERE ts >= to_timestamp_micros(259200000000)"
        )
        .await,
        10
    );
}

#[tokio::test]
async fn update_changes_config_rows_and_persists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("amount", money_type(), true),
        Field::new("period", DataType::Utf8, true),
    ]));
    let mut options = TableOptions::config();
    options
        .defaults
        .push(("period".into(), ColumnDefault::Text("month".into())));
    {
        let storage = open(dir.path()).await;
        let table = storage
            .create_table("finops", "budgets", schema, options)
            .await
            .expect("create");
        let ctx = SessionContext::new();
        ctx.register_table("b", Arc::new(table.clone()))
            .expect("register");
        for sql in [
            "INSERT INTO b (name, amount) VALUES ('a', 1.5), ('b', 2.5)",
            "UPDATE b SET amount = amount * 10 WHERE name = 'a'",
        ] {
            ctx.sql(sql)
                .await
                .expect("plan")
                .collect()
                .await
                .expect("run");
        }
    }
    let storage = open(dir.path()).await;
    let table = storage.table("finops", "budgets").expect("reopened");
    let batches = query(
        &table,
        "SELECT name, CAST(amount AS VARCHAR), period FROM t ORDER BY name",
    )
    .await;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .expect("format")
        .to_string();
    assert!(
        text.contains("| a    | 15.000000000000") && text.contains("| b    | 2.500000000000"),
        "{text}"
    );
    assert!(text.contains("month"), "{text}");
}

#[tokio::test]
async fn compaction_merges_small_segments_and_keeps_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(dir.path()).await;
    let table = table_with_daily_segments(&storage, 12).await;
    assert_eq!(table.stats().segments, 12);
    let old = table.stats().segment_paths;
    let merges = table.compact().await.expect("compact");
    assert!(merges >= 1);
    assert_eq!(table.stats().segments, 1);
    assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 120);
    storage.maintain().await.expect("collect");
    for path in old {
        assert!(!dir.path().join(path).exists(), "retired file left behind");
    }
    drop(table);
    drop(storage);
    let storage = open(dir.path()).await;
    let table = usage_table(&storage).await;
    assert_eq!(
        table
            .append(vec![usage_batch(&[("d3-3", 0, None)])])
            .await
            .expect("append"),
        0
    );
    assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 120);
}

#[tokio::test]
async fn segments_are_plain_parquet_sorted_by_ts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(dir.path()).await;
    let table = usage_table(&storage).await;
    table
        .append(vec![usage_batch(&[
            ("late", 50, Some(2)),
            ("early", 10, Some(3)),
            ("mid", 30, None),
        ])])
        .await
        .expect("append");
    table.flush().await.expect("flush");
    let path = dir.path().join(&table.stats().segment_paths[0]);
    let ctx = SessionContext::new();
    let df = ctx
        .read_parquet(path.to_str().expect("utf-8"), ParquetReadOptions::default())
        .await
        .expect("read_parquet");
    let batches = df.collect().await.expect("collect");
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(rows, 3);
    let ts: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("ts")
                .expect("ts")
                .as_primitive::<TimestampMicrosecondType>()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(ts, [10, 30, 50]);
}

#[tokio::test]
async fn reopen_restores_tables_and_drop_deletes_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let storage = open(dir.path()).await;
        usage_table(&storage).await;
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true)]));
        let owners = storage
            .create_table("finops", "owners", schema.clone(), TableOptions::config())
            .await
            .expect("create");
        owners
            .append(vec![
                RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(vec!["x"]))])
                    .expect("batch"),
            ])
            .await
            .expect("append");
        assert!(matches!(
            storage
                .create_table("finops", "owners", schema, TableOptions::config())
                .await,
            Err(Error::TableExists(_))
        ));
    }
    let storage = open(dir.path()).await;
    let names: Vec<String> = storage
        .tables()
        .into_iter()
        .map(|(s, n, _)| format!("{s}.{n}"))
        .collect();
    assert_eq!(names, ["finops.owners", "finops.usage_events"]);
    let owners = storage.table("finops", "owners").expect("owners");
    assert_eq!(scalar_i64(&owners, "SELECT count(*) FROM t").await, 1);
    let owners_dir = storage.backend.local_path(&owners.core.dir).expect("local");
    storage.drop_table("finops", "owners").await.expect("drop");
    assert!(!owners_dir.exists());
    drop(owners);
    drop(storage);
    let storage = open(dir.path()).await;
    assert!(storage.table("finops", "owners").is_none());
    assert!(storage.table("finops", "usage_events").is_some());
}

#[tokio::test]
async fn truncate_empties_table_and_forgets_event_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(dir.path()).await;
    let table = table_with_daily_segments(&storage, 2).await;
    table
        .append(vec![usage_batch(&[("wal-only", 1, None)])])
        .await
        .expect("append");
    let ctx = SessionContext::new();
    ctx.register_table("t", Arc::new(table.clone()))
        .expect("register");
    let out = ctx
        .sql("TRUNCATE TABLE t")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    assert_eq!(
        out[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
            .value(0),
        21
    );
    assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 0);
    assert_eq!(
        table
            .append(vec![usage_batch(&[("d0-0", 1, None)])])
            .await
            .expect("append"),
        1
    );
    drop(ctx);
    drop(table);
    drop(storage);
    let storage = open(dir.path()).await;
    assert_eq!(event_ids(&usage_table(&storage).await).await, ["d0-0"]);
}

#[tokio::test]
async fn interrupted_flush_leftovers_are_removed_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir;
    {
        let storage = open(dir.path()).await;
        let table = usage_table(&storage).await;
        table
            .append(vec![usage_batch(&[("a", 1, None)])])
            .await
            .expect("append");
        data_dir = storage
            .backend
            .local_path(&table.core.dir.clone().join("data"))
            .expect("local");
    }
    // A segment written by a flush that crashed before its manifest commit.
    std::fs::create_dir_all(&data_dir).expect("mkdir");
    std::fs::write(data_dir.join(format!("{:020}.parquet", 0)), b"half a file").expect("write");
    let storage = open(dir.path()).await;
    let table = usage_table(&storage).await;
    assert!(!data_dir.join(format!("{:020}.parquet", 0)).exists());
    assert_eq!(event_ids(&table).await, ["a"]);
    table.flush().await.expect("flush");
    assert_eq!(event_ids(&table).await, ["a"]);
}

#[tokio::test]
async fn sql_insert_without_model_names_column_and_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(dir.path()).await;
    let table = usage_table(&storage).await;
    let ctx = SessionContext::new();
    ctx.register_table("t", Arc::new(table.clone()))
        .expect("register");
    let result = ctx
        .sql("INSERT INTO t (event_id, ts, provider) VALUES ('r1', '2026-01-01T00:00:00Z', 'openai')")
        .await
        .expect("plan")
        .collect()
        .await;
    let err = result.expect_err("model is NOT NULL");
    let message = err.to_string();
    assert!(
        message.contains("\"model\"") && message.contains("row 1"),
        "{message}"
    );
    assert_eq!(
        crate::error::classify_datafusion(&err),
        crate::ErrorKind::InvalidInput
    );
    assert!(event_ids(&table).await.is_empty());
}

#[tokio::test]
async fn value_that_does_not_convert_fails_instead_of_becoming_null() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(dir.path()).await;
    let schema = Arc::new(Schema::new(vec![Field::new("amount", money_type(), true)]));
    let table = storage
        .create_table("finops", "prices", schema, TableOptions::config())
        .await
        .expect("create");
    let text = Arc::new(Schema::new(vec![Field::new(
        "amount",
        DataType::Utf8,
        true,
    )]));
    let batch = RecordBatch::try_new(text, vec![Arc::new(StringArray::from(vec!["1.5", "abc"]))])
        .expect("batch");
    let err = table
        .append(vec![batch])
        .await
        .expect_err("abc is not numeric");
    assert!(matches!(err, Error::InvalidValue { .. }), "{err}");
    assert_eq!(table.stats().wal_rows, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_are_serialized_and_all_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = test_options();
    options.flush_statements = 16;
    let storage = Storage::open(dir.path().to_str().expect("utf-8"), options)
        .await
        .expect("open");
    let table = usage_table(&storage).await;
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let table = table.clone();
        tasks.push(tokio::spawn(async move {
            let mut inserted = 0;
            for statement in 0..25 {
                let ids: Vec<String> = (0..4)
                    .map(|i| format!("w{writer}-s{statement}-{i}"))
                    .collect();
                let mut rows: Vec<(&str, i64, Option<i64>)> = ids
                    .iter()
                    .map(|id| (id.as_str(), statement, None))
                    .collect();
                // Every statement also repeats a row all writers share.
                rows.push(("shared", 0, None));
                inserted += table
                    .append(vec![usage_batch(&rows)])
                    .await
                    .expect("append");
            }
            inserted
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.expect("task");
    }
    assert_eq!(total, 8 * 25 * 4 + 1);
    assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 801);
    storage.maintain().await.expect("maintain");
    drop(table);
    drop(storage);
    let storage = open(dir.path()).await;
    let table = usage_table(&storage).await;
    assert_eq!(
        scalar_i64(&table, "SELECT count(DISTINCT event_id) FROM t").await,
        801
    );
    assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 801);
}

#[tokio::test]
async fn query_planned_before_compaction_reads_its_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(dir.path()).await;
    let table = table_with_daily_segments(&storage, 4).await;
    let ctx = SessionContext::new();
    ctx.register_table("t", Arc::new(table.clone()))
        .expect("register");
    let df = ctx.sql("SELECT count(*) FROM t").await.expect("plan");
    let plan = df.create_physical_plan().await.expect("physical plan");
    table
        .append(vec![usage_batch(&[("after", 1, None)])])
        .await
        .expect("append");
    assert_eq!(table.compact().await.expect("compact"), 1);
    let batches = datafusion::physical_plan::collect(plan, ctx.task_ctx())
        .await
        .expect("run");
    assert_eq!(
        batches[0]
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0),
        40
    );
    assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 41);
}

/// Append throughput, for the README's numbers: `cargo test --release --lib append_throughput --
/// --ignored --nocapture`. Not a test of behaviour, so ignored by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn append_throughput() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (sync, rows_per_statement, statements) in
        [(true, 10_000, 100), (false, 10_000, 100), (true, 1, 2_000)]
    {
        let mut options = StorageOptions {
            sync,
            ..StorageOptions::default()
        };
        options.background_interval = None;
        let path = dir.path().join(format!("s{sync}-{rows_per_statement}"));
        let storage = Storage::open(path.to_str().expect("utf-8"), options)
            .await
            .expect("open");
        let table = usage_table(&storage).await;
        let ids: Vec<String> = (0..rows_per_statement * statements)
            .map(|i| format!("req_{i:012}"))
            .collect();
        let batches: Vec<RecordBatch> = ids
            .chunks(rows_per_statement)
            .enumerate()
            .map(|(s, chunk)| {
                let rows: Vec<(&str, i64, Option<i64>)> = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, id)| (id.as_str(), (s * rows_per_statement + i) as i64, Some(1)))
                    .collect();
                usage_batch(&rows)
            })
            .collect();
        let start = std::time::Instant::now();
        for batch in batches {
            table.append(vec![batch]).await.expect("append");
        }
        table.flush().await.expect("flush");
        let elapsed = start.elapsed();
        let total = rows_per_statement * statements;
        println!(
            "sync={sync} rows/statement={rows_per_statement}: {total} rows in {elapsed:?} = {:.0} rows/s, {:.0} statements/s",
            total as f64 / elapsed.as_secs_f64(),
            statements as f64 / elapsed.as_secs_f64()
        );
    }
}

#[tokio::test]
async fn second_open_of_a_local_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(dir.path()).await;
    let second = Storage::open(dir.path().to_str().expect("utf-8"), test_options()).await;
    assert!(matches!(second, Err(Error::Config(_))), "{second:?}");
    drop(storage);
    Storage::open(dir.path().to_str().expect("utf-8"), test_options())
        .await
        .expect("free again once the first is gone");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// A crash can cut the WAL at any byte: whatever the cut, reopening shows a prefix of the
/// acknowledged statements, each whole.
#[tokio::test]
async fn wal_cut_at_any_point_recovers_whole_statements() {
    let dir = tempfile::tempdir().expect("tempdir");
    let statements = [vec!["a1", "a2"], vec!["b1", "b2", "b3"], vec!["c1"]];
    let wal_file;
    {
        let storage = open(&dir.path().join("orig")).await;
        let table = usage_table(&storage).await;
        for ids in &statements {
            let rows: Vec<(&str, i64, Option<i64>)> = ids.iter().map(|id| (*id, 1, None)).collect();
            table
                .append(vec![usage_batch(&rows)])
                .await
                .expect("append");
        }
        let wal_dir = storage
            .backend
            .local_path(&table.core.dir.clone().join("wal"))
            .expect("local");
        wal_file = std::fs::read_dir(&wal_dir)
            .expect("wal")
            .next()
            .expect("one file")
            .expect("entry")
            .path();
    }
    let relative = wal_file
        .strip_prefix(dir.path().join("orig"))
        .expect("inside")
        .to_path_buf();
    let len = std::fs::metadata(&wal_file).expect("meta").len();
    let prefixes: Vec<Vec<String>> = (0..=statements.len())
        .map(|n| {
            let mut ids: Vec<String> = statements[..n]
                .iter()
                .flatten()
                .map(|s| s.to_string())
                .collect();
            ids.sort();
            ids
        })
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    let step = (len / 60).max(1);
    for cut in (0..len).step_by(step as usize).chain([len - 1, len]) {
        let copy = dir.path().join(format!("cut{cut}"));
        copy_dir(&dir.path().join("orig"), &copy);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(copy.join(&relative))
            .expect("open");
        file.set_len(cut).expect("cut");
        drop(file);
        let storage = open(&copy).await;
        let ids = event_ids(&usage_table(&storage).await).await;
        let position = prefixes.iter().position(|p| *p == ids);
        assert!(position.is_some(), "cut at {cut} of {len} gave {ids:?}");
        seen.extend(position);
    }
    assert_eq!(
        seen.len(),
        statements.len() + 1,
        "every prefix length was exercised"
    );
}

/// The object-store code path (one WAL object per statement, no local files, no fsync).
#[tokio::test]
async fn object_store_data_directory_supports_the_whole_write_path() {
    let storage = Storage::open("memory:///finops", test_options())
        .await
        .expect("open");
    let table = usage_table(&storage).await;
    for day in 0..4 {
        let id = format!("m{day}");
        table
            .append(vec![usage_batch(&[(id.as_str(), day * DAY_US, None)])])
            .await
            .expect("append");
        table.flush().await.expect("flush");
    }
    assert_eq!(
        table
            .append(vec![usage_batch(&[("m1", 0, None), ("wal", 0, None)])])
            .await
            .expect("append"),
        1
    );
    assert_eq!(table.compact().await.expect("compact"), 1);
    let ctx = SessionContext::new();
    ctx.register_table("t", Arc::new(table.clone()))
        .expect("register");
    ctx.sql("DELETE FROM t WHERE event_id = 'm2'")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("run");
    assert_eq!(event_ids(&table).await, ["m0", "m1", "m3", "wal"]);
}
