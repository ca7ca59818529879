//! The parse cache shared by provider tables: parsed files kept while the object is unchanged,
//! so a query over an export folder does not re-read and re-parse files it has seen.
//!
//! Owns cache keys and validity only; it must not list, read or parse files.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::ParsedFile;

/// Parsed files kept between scans, keyed by format, error mode and location, and valid while the
/// object's size, last-modified time, ETag and version are unchanged.
#[derive(Debug, Default)]
pub struct ParseCache {
    entries: Mutex<HashMap<String, (FileVersion, Arc<ParsedFile>)>>,
    parses: AtomicU64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileVersion {
    pub(crate) size: u64,
    pub(crate) modified: i64,
    pub(crate) e_tag: Option<String>,
    pub(crate) version: Option<String>,
}

impl ParseCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many files were parsed (cache misses) since the cache was made.
    pub fn parse_count(&self) -> u64 {
        self.parses.load(Ordering::Relaxed)
    }

    pub(crate) fn lookup(&self, key: &str, version: &FileVersion) -> Option<Arc<ParsedFile>> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(key)
            .filter(|(v, _)| v == version)
            .map(|(_, p)| Arc::clone(p))
    }

    pub(crate) fn store(&self, key: String, version: FileVersion, parsed: Arc<ParsedFile>) {
        self.parses.fetch_add(1, Ordering::Relaxed);
        // A poisoned lock only loses caching, never correctness.
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(key, (version, parsed));
        }
    }
}
