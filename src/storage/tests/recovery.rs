//! Recovery: failed writes, torn and cut WALs, crash leftovers, reopen, directory locking.
//!
//! Tests use scratch directories only and must not depend on timing.

use super::*;

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
async fn second_open_of_a_local_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = open(dir.path()).await;
    let second = Storage::open(dir.path().to_str().expect("utf-8"), test_options()).await;
    assert!(matches!(second, Err(Error::InUse(_))), "{second:?}");
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
