//! The parse cache shared by provider tables: parsed files kept while the object is unchanged,
//! so a query over an export folder does not re-read and re-parse files it has seen.
//!
//! Owns cache keys and validity only; it must not list, read or parse files.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::ParsedFile;

/// What the cache may hold by default. Parsed JSON exports take about 1 to 1.6 times their
/// size on disk (OpenAI request logs 1.6, Bedrock invocation logs 1.05), so this keeps about
/// 1.3 GB of exports parsed.
pub const DEFAULT_BUDGET_BYTES: usize = 2 << 30;

/// Parsed files kept between scans, keyed by format, error mode and location, and valid while the
/// object's size, last-modified time, ETag and version are unchanged. It holds at most its budget
/// of parsed rows: past it, the files used longest ago are dropped and parsed again when read.
/// A scan never drops what it has itself used: when a folder is larger than the budget, the files
/// that fit stay cached and the rest is parsed on each scan, instead of every file pushing out
/// the one the next scan needs first.
#[derive(Debug)]
pub struct ParseCache {
    entries: Mutex<Entries>,
    parses: AtomicU64,
    budget: usize,
    /// A lock per file being parsed, so that concurrent scans parse it once.
    gates: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
}

#[derive(Debug, Default)]
struct Entries {
    files: HashMap<String, Entry>,
    /// Sum of the entries' sizes.
    bytes: usize,
    /// Bumped on every use; an entry's `used` orders evictions.
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    version: FileVersion,
    parsed: Arc<ParsedFile>,
    bytes: usize,
    used: u64,
}

/// The cache clock when a scan began (see [`ParseCache::begin_scan`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanMark(u64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileVersion {
    pub(crate) size: u64,
    pub(crate) modified: i64,
    pub(crate) e_tag: Option<String>,
    pub(crate) version: Option<String>,
}

impl Default for ParseCache {
    fn default() -> Self {
        Self::with_budget(DEFAULT_BUDGET_BYTES)
    }
}

impl ParseCache {
    /// An empty cache holding up to [`DEFAULT_BUDGET_BYTES`].
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty cache holding parsed files of up to `budget` bytes in memory (0: none).
    pub fn with_budget(budget: usize) -> Self {
        ParseCache {
            entries: Mutex::new(Entries::default()),
            parses: AtomicU64::new(0),
            budget,
            gates: Mutex::default(),
        }
    }

    /// How many files were parsed (cache misses) since the cache was made.
    pub fn parse_count(&self) -> u64 {
        self.parses.load(Ordering::Relaxed)
    }

    /// Memory held by the cached files, in bytes.
    pub fn cached_bytes(&self) -> usize {
        self.entries.lock().map(|e| e.bytes).unwrap_or(0)
    }

    /// The lock held while `key` is parsed (see [`Self::lookup`] again once it is held).
    pub(crate) fn gate(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = match self.gates.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(gate) = gates.get(key).and_then(Weak::upgrade) {
            return gate;
        }
        // Locks nobody holds any more go before the map grows.
        if gates.len() >= 64 {
            gates.retain(|_, g| g.strong_count() > 0);
        }
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        gates.insert(key.to_string(), Arc::downgrade(&gate));
        gate
    }

    /// Start a scan: entries used from now on are protected from eviction by the scan's stores.
    pub(crate) fn begin_scan(&self) -> ScanMark {
        let mut entries = match self.entries.lock() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        entries.clock += 1;
        ScanMark(entries.clock)
    }

    pub(crate) fn lookup(&self, key: &str, version: &FileVersion) -> Option<Arc<ParsedFile>> {
        let mut entries = self.entries.lock().ok()?;
        entries.clock += 1;
        let now = entries.clock;
        let entry = entries
            .files
            .get_mut(key)
            .filter(|e| e.version == *version)?;
        entry.used = now;
        Some(Arc::clone(&entry.parsed))
    }

    /// Keep `parsed` if it fits the budget after dropping entries not used since `scan` began.
    pub(crate) fn store(
        &self,
        key: String,
        version: FileVersion,
        parsed: Arc<ParsedFile>,
        scan: ScanMark,
    ) {
        self.parses.fetch_add(1, Ordering::Relaxed);
        let bytes =
            parsed.native.get_array_memory_size() + parsed.canonical.get_array_memory_size();
        // A poisoned lock only loses caching, never correctness.
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if let Some(old) = entries.files.remove(&key) {
            entries.bytes -= old.bytes;
        }
        log::debug!("parsed {key}: {bytes} bytes in memory");
        if bytes > self.budget {
            return;
        }
        while entries.bytes + bytes > self.budget {
            let Some(oldest) = entries
                .files
                .iter()
                .filter(|(_, e)| e.used < scan.0)
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                // Everything left was used by this scan: keep it rather than this file.
                return;
            };
            if let Some(evicted) = entries.files.remove(&oldest) {
                entries.bytes -= evicted.bytes;
            }
        }
        entries.clock += 1;
        let used = entries.clock;
        entries.bytes += bytes;
        entries.files.insert(
            key,
            Entry {
                version,
                parsed,
                bytes,
                used,
            },
        );
    }
}
