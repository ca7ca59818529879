//! What changed in a table since an earlier point of its history: nothing, only appends (and
//! the smallest `ts` they brought), or something this log cannot describe (rows deleted or
//! rewritten, a restart, a history too long to keep). Materialized views use it to refresh after
//! appends without counting the rows of their whole input again.
//!
//! Positions are only comparable within one opening of a table: each opening has its own epoch,
//! so a position kept across a restart reads as [`Changes::Unknown`]. Flushes and compaction move
//! rows between files without changing them and are not changes.
//!
//! It must not read or write storage; the write path records into it after publishing.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// How many appends are remembered; a position older than that reads as [`Changes::Unknown`].
const REMEMBERED_APPENDS: usize = 4096;

/// A point in a table's history, as [`crate::storage::DurableTable::change_position`] gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangePosition {
    /// Which opening of the table the version counts in.
    pub epoch: u64,
    /// Changes published in that opening before this point.
    pub version: u64,
}

/// What changed since a [`ChangePosition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Changes {
    /// Nothing.
    None,
    /// Rows were appended, none before this `ts` (microseconds since the epoch); NULL `ts` values
    /// are not bounded by it.
    Appended {
        /// Smallest `ts` among the appended rows.
        min_ts: i64,
    },
    /// Rows were deleted or rewritten, appended without a known `ts`, or the position is from
    /// another opening or too old.
    Unknown,
}

/// The change history of one opened table.
#[derive(Debug)]
pub(crate) struct ChangeLog {
    epoch: u64,
    version: u64,
    /// `(version, smallest ts)` of the latest appends, oldest first.
    appends: VecDeque<(u64, Option<i64>)>,
    /// Changes up to this version are not described by `appends`.
    opaque_through: u64,
}

impl Default for ChangeLog {
    fn default() -> Self {
        static OPENINGS: AtomicU64 = AtomicU64::new(0);
        let clock = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        ChangeLog {
            // Distinct across openings in this process (the counter) and across restarts (the
            // clock).
            epoch: clock.wrapping_add(OPENINGS.fetch_add(1, Ordering::Relaxed)),
            version: 0,
            appends: VecDeque::new(),
            opaque_through: 0,
        }
    }
}

impl ChangeLog {
    /// The current position.
    pub(crate) fn position(&self) -> ChangePosition {
        ChangePosition {
            epoch: self.epoch,
            version: self.version,
        }
    }

    /// Rows were appended; `min_ts` is their smallest `ts`, `None` when unknown.
    pub(crate) fn appended(&mut self, min_ts: Option<i64>) {
        self.version += 1;
        self.appends.push_back((self.version, min_ts));
        if self.appends.len() > REMEMBERED_APPENDS
            && let Some((forgotten, _)) = self.appends.pop_front()
        {
            self.opaque_through = self.opaque_through.max(forgotten);
        }
    }

    /// Rows were deleted or changed in place.
    pub(crate) fn rewritten(&mut self) {
        self.version += 1;
        self.opaque_through = self.version;
        self.appends.clear();
    }

    /// What changed since `from`.
    pub(crate) fn since(&self, from: &ChangePosition) -> Changes {
        if from.epoch != self.epoch || from.version > self.version {
            return Changes::Unknown;
        }
        if from.version == self.version {
            return Changes::None;
        }
        if from.version < self.opaque_through {
            return Changes::Unknown;
        }
        let mut min_ts = i64::MAX;
        for (version, ts) in &self.appends {
            if *version <= from.version {
                continue;
            }
            match ts {
                Some(ts) => min_ts = min_ts.min(*ts),
                None => return Changes::Unknown,
            }
        }
        Changes::Appended { min_ts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_since_a_position_are_bounded_by_their_smallest_ts() {
        let mut log = ChangeLog::default();
        let start = log.position();
        assert_eq!(log.since(&start), Changes::None);
        log.appended(Some(50));
        let middle = log.position();
        log.appended(Some(70));
        log.appended(Some(60));
        assert_eq!(log.since(&start), Changes::Appended { min_ts: 50 });
        assert_eq!(log.since(&middle), Changes::Appended { min_ts: 60 });
        assert_eq!(log.since(&log.position()), Changes::None);
    }

    #[test]
    fn rewrites_unknown_bounds_and_other_openings_are_unknown() {
        let mut log = ChangeLog::default();
        let start = log.position();
        log.appended(Some(5));
        log.rewritten();
        let after_rewrite = log.position();
        assert_eq!(log.since(&start), Changes::Unknown);
        log.appended(Some(9));
        assert_eq!(log.since(&after_rewrite), Changes::Appended { min_ts: 9 });
        let before_unbounded = log.position();
        log.appended(None);
        assert_eq!(log.since(&before_unbounded), Changes::Unknown);
        assert_eq!(ChangeLog::default().since(&start), Changes::Unknown);
    }

    #[test]
    fn positions_older_than_the_remembered_appends_are_unknown() {
        let mut log = ChangeLog::default();
        let start = log.position();
        log.appended(Some(1));
        let second = log.position();
        for ts in 0..REMEMBERED_APPENDS as i64 {
            log.appended(Some(ts + 10));
        }
        assert_eq!(log.since(&start), Changes::Unknown);
        assert_eq!(log.since(&second), Changes::Appended { min_ts: 10 });
    }
}
