//! Appends through SQL and directly: counts, idempotency, NOT NULL, casts, concurrency.
//!
//! Tests use scratch directories only and must not depend on timing.

use super::*;

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

/// Segments split into byte ranges over several partitions (what a scan does once segments
/// are large) still yield every row exactly once, with text read as views.
#[tokio::test]
async fn scans_split_into_byte_ranges_read_every_row_once() {
    use datafusion::catalog::TableProvider;
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(dir.path()).await;
    let table = usage_table(&storage).await;
    let mut expected = 0i64;
    for segment in 0..3i64 {
        let ids: Vec<String> = (0..2_000).map(|i| format!("s{segment}-{i}")).collect();
        let rows: Vec<(&str, i64, Option<i64>)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), segment * DAY_US + i as i64, Some(i as i64 % 7)))
            .collect();
        expected += rows.iter().map(|r| r.2.unwrap_or(1)).sum::<i64>();
        table
            .append(vec![usage_batch(&rows)])
            .await
            .expect("append");
        table.flush().await.expect("flush");
    }
    assert_eq!(table.stats().segments, 3);
    let config = datafusion::prelude::SessionConfig::new()
        .with_target_partitions(4)
        .set_usize("datafusion.optimizer.repartition_file_min_size", 1);
    let ctx = SessionContext::new_with_config(config);
    ctx.register_table("t", Arc::new(table.clone()))
        .expect("register");
    let plan = ctx
        .sql("SELECT count(*), count(DISTINCT event_id), sum(requests) FROM t")
        .await
        .expect("plan");
    let physical = plan.clone().create_physical_plan().await.expect("physical");
    let shown = datafusion::physical_plan::displayable(physical.as_ref())
        .indent(true)
        .to_string();
    assert!(shown.contains("file_groups={4 groups"), "{shown}");
    let batches = plan.collect().await.expect("run");
    let b = &batches[0];
    let count = |i: usize| {
        b.column(i)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0)
    };
    assert_eq!((count(0), count(1), count(2)), (6_000, 6_000, expected));
    assert_eq!(
        table
            .schema()
            .field_with_name("team")
            .expect("team")
            .data_type(),
        &DataType::Utf8View
    );
}

/// The column chunks of the first row group of a usage segment written from two rows.
async fn usage_segment_columns() -> Vec<datafusion::parquet::file::metadata::ColumnChunkMetaData> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(dir.path()).await;
    let table = usage_table(&storage).await;
    table
        .append(vec![usage_batch(&[("a", 1, Some(3)), ("b", 2, None)])])
        .await
        .expect("append");
    table.flush().await.expect("flush");
    let path = dir.path().join(&table.stats().segment_paths[0]);
    let reader =
        SerializedFileReader::new(std::fs::File::open(&path).expect("open")).expect("parquet");
    reader.metadata().row_group(0).columns().to_vec()
}

fn column<'a>(
    columns: &'a [datafusion::parquet::file::metadata::ColumnChunkMetaData],
    name: &str,
) -> &'a datafusion::parquet::file::metadata::ColumnChunkMetaData {
    columns
        .iter()
        .find(|c| c.column_path().string() == name)
        .unwrap_or_else(|| panic!("column {name}"))
}

#[tokio::test]
async fn usage_segments_compress_only_the_mostly_distinct_text_columns() {
    use datafusion::parquet::basic::Compression;

    let columns = usage_segment_columns().await;
    let compression = |name: &str| column(&columns, name).compression();
    for name in ["event_id", "prompt_hash", "user_id", "tags"] {
        assert!(
            matches!(compression(name), Compression::ZSTD(_)),
            "{name}: {:?}",
            compression(name)
        );
    }
    for name in ["ts", "provider", "team", "input_tokens", "requests"] {
        assert_eq!(compression(name), Compression::UNCOMPRESSED, "{name}");
    }
}

#[tokio::test]
async fn usage_segments_keep_statistics_only_where_a_filter_can_skip_row_groups() {
    let columns = usage_segment_columns().await;
    let has_statistics = |name: &str| column(&columns, name).statistics().is_some();
    for name in [
        "ts",
        "provider",
        "model",
        "team",
        "input_tokens",
        "requests",
    ] {
        assert!(has_statistics(name), "{name} has no statistics");
    }
    for name in ["event_id", "prompt_hash", "user_id", "app", "tags"] {
        assert!(!has_statistics(name), "{name} has statistics");
    }
}
