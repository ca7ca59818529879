//! The write-ahead log of one table: every acknowledged statement is one checksummed record, made
//! durable before the statement returns, and replayed at open for whatever has not yet been folded
//! into Parquet segments.
//!
//! A record is `b"FWAL" | payload length (u32 LE) | CRC-32 of payload (u32 LE) | payload`, and the
//! payload is an Arrow IPC stream of the statement's rows. On a local disk records are appended to
//! `wal/<seq:020>.wal` and fsynced (when `sync` is on); on an object store each record is its own
//! object `wal/<seq:020>.wal`, since objects cannot be appended to. Replay reads every file in
//! sequence order and stops a file at the first record that is short or fails its checksum: that is
//! a torn tail from a crash mid-write, never an acknowledged statement.
//!
//! It owns the record format, appending, rotation and replay. It must not decide when to flush, nor
//! know about segments or manifests.

use std::io::{Seek, SeekFrom, Write};
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::ipc::reader::StreamReader;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::record_batch::RecordBatch;
use object_store::path::Path;

use super::backend::{Backend, fsync_dir};
use crate::error::{Error, Result};

/// First bytes of every record.
const MAGIC: &[u8; 4] = b"FWAL";
/// Magic, length and checksum.
const HEADER_LEN: usize = 12;

/// An open local WAL file and the length of its valid prefix.
#[derive(Debug)]
struct LocalFile {
    file: std::fs::File,
    len: u64,
}

/// The appending side of a table's WAL.
#[derive(Debug)]
pub(crate) struct Wal {
    backend: Arc<Backend>,
    dir: Path,
    /// Sequence number of the file the next record goes to.
    seq: u64,
    /// The open local file, once something has been written to `seq`.
    local: Option<LocalFile>,
}

impl Wal {
    /// A WAL under `dir` whose next record goes to file `seq`.
    pub(crate) fn new(backend: Arc<Backend>, dir: Path, seq: u64) -> Self {
        Self {
            backend,
            dir,
            seq,
            local: None,
        }
    }

    fn file_path(&self, seq: u64) -> Path {
        self.dir.clone().join(format!("{seq:020}.wal"))
    }

    /// Make `batches` durable as one record. On error nothing of the record remains that replay
    /// would accept, and the next append goes to a fresh file.
    pub(crate) async fn append(
        &mut self,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<()> {
        let record = encode_record(schema, batches)?;
        let path = self.file_path(self.seq);
        let Some(fs_path) = self.backend.local_path(&path) else {
            // One object per record: a put is atomic and durable once it returns. A failed put may
            // still have landed (a lost response), so remove it before failing the statement.
            let outcome = self.backend.put(&path, record.into()).await;
            if outcome.is_err() {
                let _ = self.backend.delete(&path).await;
            }
            self.seq += 1;
            return outcome;
        };
        let sync = self.backend.sync;
        let local = self.local.take();
        let outcome = tokio::task::spawn_blocking(move || {
            let mut local = match local {
                Some(local) => local,
                None => open_new(&fs_path, sync)?,
            };
            match write_record(&mut local, &record, sync) {
                Ok(()) => Ok(local),
                Err(e) => {
                    // Cut the partial record off so it can never be replayed as acknowledged.
                    let _ = local.file.set_len(local.len);
                    let _ = local.file.sync_all();
                    Err(Error::io(fs_path.display().to_string(), e))
                }
            }
        })
        .await
        .map_err(|e| Error::Internal(format!("WAL write task failed: {e}")))?;
        match outcome {
            Ok(local) => {
                self.local = Some(local);
                Ok(())
            }
            Err(e) => {
                // The old file may still hold garbage if the truncation failed; never append to it.
                self.seq += 1;
                Err(e)
            }
        }
    }

    /// Close the current file and start a new one; returns the highest sequence number that may
    /// hold records so far, i.e. what a flush of everything appended until now covers.
    pub(crate) fn rotate(&mut self) -> u64 {
        let through = self.seq;
        self.seq += 1;
        self.local = None;
        through
    }

    /// Delete WAL files up to and including `through`, once a manifest covers them.
    pub(crate) async fn delete_through(&self, through: u64) -> Result<()> {
        for (seq, path) in list(&self.backend, &self.dir).await? {
            if seq <= through {
                self.backend.delete(&path).await?;
            }
        }
        Ok(())
    }
}

/// What replay found.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// Rows of every intact record after the flushed point, in order, one entry per statement.
    pub(crate) statements: Vec<Vec<RecordBatch>>,
    /// Highest sequence number present (flushed or not), so new records go after it.
    pub(crate) max_seq: u64,
    /// Number of files that ended in a torn or corrupt record.
    pub(crate) torn_files: usize,
}

/// Replay the WAL under `dir`, skipping files up to `flushed_through`.
pub(crate) async fn replay(backend: &Backend, dir: &Path, flushed_through: u64) -> Result<Replay> {
    let mut replay = Replay {
        max_seq: flushed_through,
        ..Default::default()
    };
    for (seq, path) in list(backend, dir).await? {
        replay.max_seq = replay.max_seq.max(seq);
        if seq <= flushed_through {
            continue;
        }
        let bytes = backend.get(&path).await?;
        let mut rest: &[u8] = &bytes;
        while !rest.is_empty() {
            match decode_record(rest) {
                Some((payload, tail)) => {
                    let reader =
                        StreamReader::try_new(payload, None).map_err(|e| Error::Corrupt {
                            location: path.to_string(),
                            message: format!("checksummed WAL record is not Arrow IPC: {e}"),
                        })?;
                    let batches =
                        reader
                            .collect::<std::result::Result<Vec<_>, _>>()
                            .map_err(|e| Error::Corrupt {
                                location: path.to_string(),
                                message: format!("checksummed WAL record is not Arrow IPC: {e}"),
                            })?;
                    replay.statements.push(batches);
                    rest = tail;
                }
                None => {
                    log::warn!(
                        "WAL {path}: dropping a torn tail of {} bytes (a write interrupted by a crash)",
                        rest.len()
                    );
                    replay.torn_files += 1;
                    break;
                }
            }
        }
    }
    Ok(replay)
}

/// WAL files under `dir` with their sequence numbers, in order.
async fn list(backend: &Backend, dir: &Path) -> Result<Vec<(u64, Path)>> {
    let mut files: Vec<(u64, Path)> = backend
        .list(dir)
        .await?
        .into_iter()
        .filter_map(|meta| {
            let seq = meta
                .location
                .filename()?
                .strip_suffix(".wal")?
                .parse()
                .ok()?;
            Some((seq, meta.location))
        })
        .collect();
    files.sort_unstable_by_key(|(seq, _)| *seq);
    Ok(files)
}

/// Encode one statement as a framed record.
fn encode_record(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut payload = Vec::new();
    {
        let mut writer = StreamWriter::try_new(&mut payload, schema)
            .map_err(datafusion::error::DataFusionError::from)?;
        for batch in batches {
            writer
                .write(batch)
                .map_err(datafusion::error::DataFusionError::from)?;
        }
        writer
            .finish()
            .map_err(datafusion::error::DataFusionError::from)?;
    }
    let len = u32::try_from(payload.len()).map_err(|_| {
        Error::ResourceExhausted(format!(
            "a single statement of {} bytes exceeds the 4 GiB WAL record limit; split it",
            payload.len()
        ))
    })?;
    let mut record = Vec::with_capacity(HEADER_LEN + payload.len());
    record.extend_from_slice(MAGIC);
    record.extend_from_slice(&len.to_le_bytes());
    record.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    record.extend_from_slice(&payload);
    Ok(record)
}

/// Split one intact record off the front of `bytes`: `(payload, rest)`, or `None` when the front is
/// not a whole record with a matching checksum.
fn decode_record(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let header = bytes.get(..HEADER_LEN)?;
    if &header[..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[8..12].try_into().ok()?);
    let payload = bytes.get(HEADER_LEN..HEADER_LEN + len)?;
    (crc32fast::hash(payload) == crc).then(|| (payload, &bytes[HEADER_LEN + len..]))
}

/// Create a new WAL file (and its directory), durable as an entry when `sync` is on.
fn open_new(path: &std::path::Path, sync: bool) -> Result<LocalFile> {
    let dir = path
        .parent()
        .ok_or_else(|| Error::Internal(format!("WAL path {} has no directory", path.display())))?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path.display().to_string(), e))?;
    let len = file
        .metadata()
        .map_err(|e| Error::io(path.display().to_string(), e))?
        .len();
    if sync {
        fsync_dir(dir)?;
    }
    Ok(LocalFile { file, len })
}

/// Append one record and make it durable.
fn write_record(local: &mut LocalFile, record: &[u8], sync: bool) -> std::io::Result<()> {
    local.file.seek(SeekFrom::End(0))?;
    local.file.write_all(record)?;
    if sync {
        local.file.sync_data()?;
    }
    local.len += record.len() as u64;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_rejects_torn_and_corrupt_records() {
        let payload = b"hello";
        let mut record = Vec::new();
        record.extend_from_slice(MAGIC);
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        record.extend_from_slice(payload);
        assert_eq!(decode_record(&record).map(|(p, _)| p), Some(&payload[..]));
        assert!(decode_record(&record[..record.len() - 1]).is_none());
        let mut corrupt = record.clone();
        corrupt[HEADER_LEN] ^= 1;
        assert!(decode_record(&corrupt).is_none());
        assert!(decode_record(&record[..5]).is_none());
    }
}
