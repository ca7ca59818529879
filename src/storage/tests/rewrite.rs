//! Rewrites and layout: DELETE, UPDATE, TRUNCATE, compaction, pruning, plain Parquet files.
//!
//! Tests use scratch directories only and must not depend on timing.

use super::*;

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
