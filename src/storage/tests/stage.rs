//! Bulk appends staged in segment files: invisible until commit, atomic on failure and crash,
//! idempotent across chunks and against concurrent writers.
//!
//! Tests use scratch directories only and must not depend on timing.

use super::*;

/// Chunks of four rows, so a handful of rows spans several staged segments.
async fn open_staging(dir: &std::path::Path) -> Arc<Storage> {
    open_staging_with(dir, test_options().compaction_target_rows).await
}

/// Chunks of four rows, files of about `compaction_target_rows`.
async fn open_staging_with(dir: &std::path::Path, compaction_target_rows: usize) -> Arc<Storage> {
    let options = StorageOptions {
        stage_rows: 4,
        compaction_target_rows,
        ..test_options()
    };
    Storage::open(dir.to_str().expect("utf-8 path"), options)
        .await
        .expect("open")
}

/// Rows `ids` with times 0, 1, ...
fn rows(ids: &[&str]) -> RecordBatch {
    rows_from(0, ids)
}

/// Files under the table's `data/` directory.
fn data_files(storage: &Storage, table: &DurableTable) -> Vec<String> {
    let dir = storage
        .backend
        .local_path(&table.core.dir.clone().join("data"))
        .expect("local");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn staged_rows_are_invisible_until_commit_and_duplicates_across_chunks_are_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open_staging(dir.path()).await;
    let table = usage_table(&storage).await;
    table.append(vec![rows(&["stored"])]).await.expect("append");
    let mut bulk = table.bulk_append();
    bulk.push(vec![rows(&["a", "b", "stored", "c", "d"])])
        .await
        .expect("chunk 1");
    bulk.push(vec![rows(&["e", "a", "f"]), rows(&["g", "c"])])
        .await
        .expect("chunk 2");
    bulk.push(vec![rows(&["h", "h", "e"])]).await.expect("tail");
    assert_eq!(bulk.staged_rows().await, 7, "two chunks were staged");
    assert_eq!(
        event_ids(&table).await,
        ["stored"],
        "staged rows are invisible"
    );
    assert_eq!(table.stats().segments, 0, "no staged segment is live");
    assert_eq!(bulk.commit().await.expect("commit"), 8);
    let expected = ["a", "b", "c", "d", "e", "f", "g", "h", "stored"];
    assert_eq!(event_ids(&table).await, expected);
    // Stored keys now include the statement's: a re-run inserts nothing.
    let mut again = table.bulk_append();
    again
        .push(vec![rows(&["a", "b", "c", "d", "e", "f", "g", "h"])])
        .await
        .expect("again");
    assert_eq!(again.commit().await.expect("commit"), 0);
    drop(table);
    drop(storage);
    let storage = open_staging(dir.path()).await;
    let table = usage_table(&storage).await;
    assert_eq!(
        event_ids(&table).await,
        expected,
        "committed rows are durable"
    );
    assert_eq!(
        table.append(vec![rows(&["a", "z"])]).await.expect("append"),
        1,
        "keys of staged segments are rebuilt at open"
    );
}

#[tokio::test]
async fn failure_after_staged_chunks_stores_nothing_and_names_the_row() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open_staging(dir.path()).await;
    let table = usage_table(&storage).await;
    let mut bulk = table.bulk_append();
    // The second chunk starts before the first ends in time, so the first file is finished.
    bulk.push(vec![rows(&["a", "b", "c", "d"])])
        .await
        .expect("chunk 1");
    bulk.push(vec![rows(&["e", "f", "g", "h"])])
        .await
        .expect("chunk 2");
    assert!(bulk.staged_rows().await >= 8);
    assert!(
        !data_files(&storage, &table).is_empty(),
        "chunks are on disk"
    );
    // Row 10 of the statement has no model.
    let mut bad = rows(&["i", "j", "k"]);
    let model = bad.schema().index_of("model").expect("model");
    let mut columns = bad.columns().to_vec();
    columns[model] = Arc::new(StringArray::from(vec![Some("m"), None, Some("m")]));
    bad = RecordBatch::try_new(bad.schema(), columns).expect("batch");
    let err = bulk.push(vec![bad]).await.expect_err("NOT NULL");
    assert!(matches!(err, Error::NotNullViolation { .. }), "{err}");
    assert!(err.to_string().contains("row 10"), "{err}");
    assert!(
        bulk.push(vec![rows(&["x"])]).await.is_err(),
        "statement is over"
    );
    assert!(event_ids(&table).await.is_empty());
    assert!(
        data_files(&storage, &table).is_empty(),
        "staged files are deleted: {:?}",
        data_files(&storage, &table)
    );
    // Nothing of the failed statement counts as stored.
    assert_eq!(
        table.append(vec![rows(&["a", "b"])]).await.expect("append"),
        2
    );
}

/// Rows `ids` with times `from`, `from + 1`, ...
fn rows_from(from: i64, ids: &[&str]) -> RecordBatch {
    let rows: Vec<(&str, i64, Option<i64>)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, from + i as i64, None))
        .collect();
    usage_batch(&rows)
}

/// Row groups of a live segment, and whether its rows are in `ts` order.
fn row_groups_and_order(storage: &Storage, table: &DurableTable, id: u64) -> (usize, bool) {
    let path = storage
        .backend
        .local_path(&segment::data_path(&table.core.dir, id))
        .expect("local");
    let bytes = bytes::Bytes::from(std::fs::read(&path).expect("segment file"));
    let builder =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .expect("parquet");
    let groups = builder.metadata().num_row_groups();
    let mut ts = Vec::new();
    for batch in builder.build().expect("reader") {
        let batch = batch.expect("batch");
        let column = batch.column_by_name("ts").expect("ts");
        ts.extend(
            column
                .as_primitive::<datafusion::arrow::datatypes::TimestampMicrosecondType>()
                .values()
                .iter()
                .copied(),
        );
    }
    (groups, ts.windows(2).all(|w| w[0] <= w[1]))
}

#[tokio::test]
async fn time_ordered_chunks_share_a_file_until_it_is_full_or_time_steps_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open_staging_with(dir.path(), 10).await;
    let table = usage_table(&storage).await;
    let mut bulk = table.bulk_append();
    for (from, ids) in [
        (0, ["a", "b", "c", "d"]),
        (4, ["e", "f", "g", "h"]),
        (8, ["i", "j", "k", "l"]),
        // The file has 12 rows, more than the target: a new one starts.
        (12, ["m", "n", "o", "p"]),
        // Starts before the open file ends: a new one, so every file stays sorted.
        (13, ["q", "r", "s", "t"]),
    ] {
        bulk.push(vec![rows_from(from, &ids)]).await.expect("chunk");
    }
    assert_eq!(bulk.commit().await.expect("commit"), 20);
    let segments = table.core.snapshot().segments.clone();
    let sizes: Vec<u64> = segments.iter().map(|s| s.rows).collect();
    assert_eq!(sizes, [12, 4, 4]);
    let layout: Vec<(usize, bool)> = segments
        .iter()
        .map(|s| row_groups_and_order(&storage, &table, s.id))
        .collect();
    // Row groups are not cut at chunks: each file here is one row group.
    assert_eq!(layout, [(1, true), (1, true), (1, true)]);
    assert_eq!(
        (segments[0].min_ts, segments[0].max_ts),
        (Some(0), Some(11))
    );
    assert_eq!(event_ids(&table).await.len(), 20);
    // Key indexes cover the whole files: a re-run inserts nothing, also after a restart.
    let mut again = table.bulk_append();
    again
        .push(vec![rows_from(0, &["a", "l", "m", "t", "u"])])
        .await
        .expect("again");
    assert_eq!(again.commit().await.expect("commit"), 1);
    drop(table);
    drop(storage);
    let storage = open_staging(dir.path()).await;
    let table = usage_table(&storage).await;
    assert_eq!(
        table
            .append(vec![rows(&["a", "h", "l", "p", "u", "v"])])
            .await
            .expect("append"),
        1
    );
}

#[tokio::test]
async fn a_chunk_of_several_batches_is_written_sorted_by_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open_staging_with(dir.path(), 100).await;
    let table = usage_table(&storage).await;
    let mut bulk = table.bulk_append();
    // In time order across its batches: written as they are.
    bulk.push(vec![rows_from(0, &["a", "b"]), rows_from(2, &["c", "d"])])
        .await
        .expect("chunk in order");
    // Each batch sorted, but the second steps back in time: the chunk is sorted as a whole.
    bulk.push(vec![rows_from(7, &["h", "i"]), rows_from(4, &["e", "f"])])
        .await
        .expect("chunk out of order");
    // A batch out of order inside, with a duplicate dropped from the other one; it starts before
    // the open file ends, so it starts a new file.
    bulk.push(vec![
        usage_batch(&[("j", 6, None), ("k", 5, None)]),
        rows_from(9, &["a", "l"]),
    ])
    .await
    .expect("chunk unsorted");
    assert_eq!(bulk.commit().await.expect("commit"), 11);
    let segments = table.core.snapshot().segments.clone();
    let layout: Vec<(u64, usize, bool)> = segments
        .iter()
        .map(|s| {
            let (groups, sorted) = row_groups_and_order(&storage, &table, s.id);
            (s.rows, groups, sorted)
        })
        .collect();
    assert_eq!(layout, [(8, 1, true), (3, 1, true)]);
    assert_eq!(
        (segments[1].min_ts, segments[1].max_ts),
        (Some(5), Some(10))
    );
}

#[tokio::test]
async fn crash_with_a_staged_uncommitted_statement_leaves_nothing_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut staged_paths;
    {
        let storage = open_staging(dir.path()).await;
        let table = usage_table(&storage).await;
        table.append(vec![rows(&["kept"])]).await.expect("append");
        let mut bulk = table.bulk_append();
        bulk.push(vec![rows(&["a", "b", "c", "d", "e", "f", "g", "h", "i"])])
            .await
            .expect("chunks");
        // The process dies here: no commit, no clean-up.
        let ids = bulk.abandon().await;
        assert!(!ids.is_empty());
        staged_paths = ids
            .iter()
            .map(|id| {
                storage
                    .backend
                    .local_path(&segment::data_path(&table.core.dir, *id))
                    .expect("local")
            })
            .collect::<Vec<_>>();
        for path in &staged_paths {
            assert!(path.exists(), "{} is staged on disk", path.display());
        }
        assert_eq!(event_ids(&table).await, ["kept"]);
        // An upload cut short leaves a staging file beside them.
        let mut cut = staged_paths[0].clone().into_os_string();
        cut.push("#7");
        std::fs::write(&cut, b"PAR1").expect("staging file");
        staged_paths.push(cut.into());
    }
    let storage = open_staging(dir.path()).await;
    let table = usage_table(&storage).await;
    assert_eq!(
        event_ids(&table).await,
        ["kept"],
        "nothing of the statement"
    );
    for path in &staged_paths {
        assert!(!path.exists(), "{} is deleted at open", path.display());
    }
    // The statement's ids are not remembered as stored, and new segments do not collide.
    let mut bulk = table.bulk_append();
    bulk.push(vec![rows(&["a", "b", "c", "d", "e", "kept"])])
        .await
        .expect("chunks");
    assert_eq!(bulk.commit().await.expect("commit"), 5);
    assert_eq!(event_ids(&table).await, ["a", "b", "c", "d", "e", "kept"]);
}

#[tokio::test]
async fn rows_inserted_concurrently_are_not_stored_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open_staging(dir.path()).await;
    let table = usage_table(&storage).await;
    let mut bulk = table.bulk_append();
    bulk.push(vec![rows(&["a", "b", "c", "d", "e"])])
        .await
        .expect("chunk");
    assert!(bulk.staged_rows().await > 0);
    // Another statement stores "b" and "e" while the COPY streams.
    assert_eq!(
        table
            .append(vec![rows(&["b", "e", "x"])])
            .await
            .expect("append"),
        3
    );
    assert_eq!(bulk.commit().await.expect("commit"), 3);
    assert_eq!(event_ids(&table).await, ["a", "b", "c", "d", "e", "x"]);
}

#[tokio::test]
async fn a_concurrent_delete_fails_a_statement_that_skipped_stored_rows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open_staging(dir.path()).await;
    let table = usage_table(&storage).await;
    table.append(vec![rows(&["a"])]).await.expect("append");
    let mut bulk = table.bulk_append();
    bulk.push(vec![rows(&["a", "b", "c", "d", "e"])])
        .await
        .expect("chunk");
    query(&table, "DELETE FROM t WHERE event_id = 'a'").await;
    assert!(
        bulk.commit().await.is_err(),
        "the skip of 'a' no longer holds"
    );
    assert!(event_ids(&table).await.is_empty());
    // The DELETE's retired segment goes with garbage collection; staged files are gone already.
    table.core.collect_garbage(true).await.expect("gc");
    assert!(
        data_files(&storage, &table).is_empty(),
        "{:?}",
        data_files(&storage, &table)
    );
}

#[tokio::test]
async fn config_tables_stage_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open_staging(dir.path()).await;
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    let table = storage
        .create_table("public", "c", Arc::clone(&schema), TableOptions::config())
        .await
        .expect("create");
    let mut bulk = table.bulk_append();
    for chunk in 0..3i64 {
        let ids = Int64Array::from_iter_values(chunk * 5..chunk * 5 + 5);
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(ids)]).expect("b");
        bulk.push(vec![batch]).await.expect("push");
    }
    assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 0);
    assert_eq!(bulk.commit().await.expect("commit"), 15);
    assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 15);
    assert_eq!(scalar_i64(&table, "SELECT sum(id) FROM t").await, 105);
}

/// The append observer sees a WAL append's rows, and a staged commit as "rows not in memory".
#[tokio::test]
async fn observer_hears_of_appends_and_staged_commits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open_staging(dir.path()).await;
    let table = usage_table(&storage).await;
    let heard = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = Arc::clone(&heard);
    table.set_append_observer(crate::storage::AppendObserver(Arc::new(
        move |batch: Option<&RecordBatch>| {
            log.lock()
                .expect("log")
                .push(batch.map(RecordBatch::num_rows));
        },
    )));
    table
        .append(vec![rows(&["a", "a", "b"])])
        .await
        .expect("append");
    let mut bulk = table.bulk_append();
    bulk.push(vec![rows(&["c", "d", "e", "f", "g"])])
        .await
        .expect("chunk");
    assert_eq!(bulk.commit().await.expect("commit"), 5);
    // Nothing inserted: nothing to hear.
    table.append(vec![rows(&["a"])]).await.expect("again");
    assert_eq!(*heard.lock().expect("log"), vec![Some(2), None]);
}

/// A committed bulk append is an append in the table's change history, bounded by its smallest
/// `ts` over every staged segment; an aborted one, a flush and a compaction are no change; a
/// TRUNCATE is one the history cannot describe.
#[tokio::test]
async fn change_history_sees_bulk_appends_but_not_file_moves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open_staging(dir.path()).await;
    let table = usage_table(&storage).await;
    let start = table.change_position();
    let mut bulk = table.bulk_append();
    bulk.push(vec![usage_batch(&[
        ("a", 50, None),
        ("b", 60, None),
        ("c", 90, None),
        ("d", 70, None),
        ("e", 30, None),
        ("f", 40, None),
    ])])
    .await
    .expect("push");
    assert_eq!(table.changes_since(&start), Changes::None, "staged only");
    bulk.commit().await.expect("commit");
    assert_eq!(
        table.changes_since(&start),
        Changes::Appended { min_ts: 30 }
    );
    let committed = table.change_position();
    let mut aborted = table.bulk_append();
    aborted
        .push(vec![rows(&["x", "y", "z", "w", "v"])])
        .await
        .expect("push");
    aborted.abort().await;
    table.append(vec![rows(&["a"])]).await.expect("duplicate");
    table.flush().await.expect("flush");
    table.compact().await.expect("compact");
    assert_eq!(table.changes_since(&committed), Changes::None);
    table
        .append(vec![usage_batch(&[("g", 10, None)])])
        .await
        .expect("append");
    assert_eq!(
        table.changes_since(&committed),
        Changes::Appended { min_ts: 10 }
    );
    assert_eq!(
        table.changes_since(&start),
        Changes::Appended { min_ts: 10 }
    );
    table.core.truncate().await.expect("truncate");
    assert_eq!(table.changes_since(&committed), Changes::Unknown);
}

#[tokio::test]
async fn a_segment_being_written_has_only_its_staging_name_until_finished() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open_staging(dir.path()).await;
    let table = usage_table(&storage).await;
    let (backend, table_dir) = (&storage.backend, &table.core.dir);
    let batch = table
        .core
        .prepare_from(vec![rows(&["a", "b", "c"])], 0)
        .expect("conform")
        .remove(0);
    for finish in [true, false] {
        let id = if finish { 900 } else { 901 };
        let mut writer = segment::SegmentWriter::new(
            backend,
            table_dir,
            id,
            Arc::clone(&table.core.schema),
            true,
        )
        .expect("writer");
        let name = format!("{id:020}.parquet");
        if finish {
            // Three rows complete no row group: the bytes come with the footer.
            let bytes = writer
                .encode(std::slice::from_ref(&batch), None)
                .expect("encode");
            writer.upload(bytes).await.expect("upload");
        } else {
            // Bytes of a row group, as far as the file is concerned.
            writer
                .upload(bytes::Bytes::from_static(b"PAR1 and a partial row group"))
                .await
                .expect("upload");
            let files = data_files(&storage, &table);
            assert!(files.contains(&format!("{name}#w")), "{files:?}");
        }
        assert!(!data_files(&storage, &table).contains(&name));
        if finish {
            let meta = writer.finish(backend, table_dir).await.expect("finish");
            assert_eq!(meta.rows, 3);
            let files = data_files(&storage, &table);
            assert!(files.contains(&name), "{files:?}");
            assert!(files.contains(&format!("{id:020}.keys")), "{files:?}");
            assert!(!files.iter().any(|f| f.contains('#')), "{files:?}");
            let read = segment::read(backend, table_dir, &table.core.schema, &meta)
                .await
                .expect("read");
            assert_eq!(read.num_rows(), 3);
            let keys = segment::read_keys(backend, table_dir, &table.core.schema, &meta)
                .await
                .expect("keys");
            assert_eq!(keys.len(), 3);
        } else {
            writer.abort(backend, table_dir).await;
            let files = data_files(&storage, &table);
            assert!(
                !files.iter().any(|f| f.starts_with(&format!("{id:020}"))),
                "{files:?}"
            );
        }
    }
}
