//! Budget periods (`day`, `week`, `month`, `quarter`) as half-open UTC intervals that start at
//! local midnight in the configured time zone.
//!
//! Owns calendar arithmetic only. It must not read tables or know about spend.

use chrono::{DateTime, Datelike, Days, Months, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::error::{Error, Result};

/// How long a budget lasts before it resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// A calendar day.
    Day,
    /// A week starting on Monday (ISO).
    Week,
    /// A calendar month.
    Month,
    /// A calendar quarter (January, April, July, October).
    Quarter,
}

/// Every period name, for messages.
pub const PERIOD_NAMES: &str = "day, week, month, quarter";

impl Period {
    /// Parse a period name.
    pub fn parse(name: &str) -> Option<Period> {
        Some(match name {
            "day" => Period::Day,
            "week" => Period::Week,
            "month" => Period::Month,
            "quarter" => Period::Quarter,
            _ => return None,
        })
    }

    /// The first local day of the period containing `day`.
    fn first_day(self, day: NaiveDate) -> NaiveDate {
        match self {
            Period::Day => day,
            Period::Week => day - Days::new(u64::from(day.weekday().num_days_from_monday())),
            Period::Month => day.with_day(1).unwrap_or(day),
            Period::Quarter => {
                let month = (day.month() - 1) / 3 * 3 + 1;
                NaiveDate::from_ymd_opt(day.year(), month, 1).unwrap_or(day)
            }
        }
    }

    /// The first local day of the period after the one starting on `first`.
    fn next_first_day(self, first: NaiveDate) -> NaiveDate {
        match self {
            Period::Day => first + Days::new(1),
            Period::Week => first + Days::new(7),
            Period::Month => first + Months::new(1),
            Period::Quarter => first + Months::new(3),
        }
    }

    /// `[start, end)` of the period containing `at`, in the time zone `tz`.
    pub fn bounds(self, at: DateTime<Utc>, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
        let first = self.first_day(at.with_timezone(&tz).date_naive());
        (
            local_midnight(first, tz),
            local_midnight(self.next_first_day(first), tz),
        )
    }

    /// `[start, end)` of the period after the one that starts at `start`.
    pub fn next(self, start: DateTime<Utc>, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
        let (_, end) = self.bounds(start, tz);
        self.bounds(end, tz)
    }
}

/// The instant local `day` begins in `tz`: midnight, or the first instant after a DST gap that
/// swallows midnight.
fn local_midnight(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    let mut time = NaiveTime::MIN;
    for _ in 0..4 {
        if let Some(t) = tz.from_local_datetime(&day.and_time(time)).earliest() {
            return t.with_timezone(&Utc);
        }
        time += chrono::Duration::minutes(30);
    }
    Utc.from_utc_datetime(&day.and_time(NaiveTime::MIN))
}

/// Parse a time zone name (`UTC`, `Europe/Berlin`); an unknown one is SQLSTATE 22023.
pub fn time_zone(name: &str) -> Result<Tz> {
    let name = name.trim();
    if name.is_empty() {
        return Ok(Tz::UTC);
    }
    // Zone names are matched in any case, as Postgres matches them (`utc`, `europe/paris`).
    name.parse::<Tz>()
        .ok()
        .or_else(|| {
            chrono_tz::TZ_VARIANTS
                .iter()
                .find(|tz| tz.name().eq_ignore_ascii_case(name))
                .copied()
        })
        .ok_or_else(|| Error::InvalidParameter(format!("unknown time zone \"{name}\"")))
}

/// Parse `finops.as_of` (empty: the clock) as an instant; RFC 3339 or `YYYY-MM-DD HH:MM:SS`
/// (UTC), or a date (its UTC midnight).
pub fn as_of(text: &str) -> Result<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("now") {
        return Ok(Utc::now());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S%#z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Ok(t.with_timezone(&Utc));
        }
    }
    for format in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, format) {
            return Ok(Utc.from_utc_datetime(&t));
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN)));
    }
    Err(Error::InvalidParameter(format!(
        "invalid timestamp \"{text}\" for finops.as_of (expected e.g. 2026-05-15T12:00:00Z)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        as_of(s).expect("timestamp")
    }

    #[test]
    fn periods_start_at_local_midnight() {
        let cases = [
            (
                Period::Day,
                "2026-05-15T12:00:00Z",
                "UTC",
                "2026-05-15T00:00:00Z",
                "2026-05-16T00:00:00Z",
            ),
            (
                Period::Week,
                "2026-05-15T12:00:00Z",
                "UTC",
                "2026-05-11T00:00:00Z",
                "2026-05-18T00:00:00Z",
            ),
            (
                Period::Month,
                "2026-01-31T23:59:59Z",
                "UTC",
                "2026-01-01T00:00:00Z",
                "2026-02-01T00:00:00Z",
            ),
            (
                Period::Month,
                "2028-02-29T10:00:00Z",
                "UTC",
                "2028-02-01T00:00:00Z",
                "2028-03-01T00:00:00Z",
            ),
            (
                Period::Quarter,
                "2026-05-15T12:00:00Z",
                "UTC",
                "2026-04-01T00:00:00Z",
                "2026-07-01T00:00:00Z",
            ),
            (
                Period::Quarter,
                "2026-12-31T12:00:00Z",
                "UTC",
                "2026-10-01T00:00:00Z",
                "2027-01-01T00:00:00Z",
            ),
            // 23:30 UTC on 31 January is already February in Berlin.
            (
                Period::Month,
                "2026-01-31T23:30:00Z",
                "Europe/Berlin",
                "2026-01-31T23:00:00Z",
                "2026-02-28T23:00:00Z",
            ),
            // The day DST starts in New York has 23 hours.
            (
                Period::Day,
                "2026-03-08T12:00:00Z",
                "America/New_York",
                "2026-03-08T05:00:00Z",
                "2026-03-09T04:00:00Z",
            ),
            (
                Period::Day,
                "2026-05-15T02:00:00Z",
                "Asia/Kolkata",
                "2026-05-14T18:30:00Z",
                "2026-05-15T18:30:00Z",
            ),
        ];
        for (period, at, tz, start, end) in cases {
            let tz = time_zone(tz).expect("tz");
            assert_eq!(
                period.bounds(utc(at), tz),
                (utc(start), utc(end)),
                "{period:?} at {at} in {tz}"
            );
        }
    }

    #[test]
    fn next_period_follows_the_current_one() {
        let tz = time_zone("UTC").expect("tz");
        let (start, _) = Period::Month.bounds(utc("2028-02-10T00:00:00Z"), tz);
        assert_eq!(
            Period::Month.next(start, tz),
            (utc("2028-03-01T00:00:00Z"), utc("2028-04-01T00:00:00Z"))
        );
    }

    #[test]
    fn bad_time_zone_and_as_of_are_rejected() {
        assert!(time_zone("Mars/Olympus").is_err());
        assert_eq!(
            time_zone("europe/paris").expect("any case"),
            Tz::Europe__Paris
        );
        assert!(as_of("yesterday-ish").is_err());
        assert_eq!(utc("2026-05-15"), utc("2026-05-15T00:00:00Z"));
        assert_eq!(utc("2026-05-15 02:00:00+02"), utc("2026-05-15T00:00:00Z"));
    }
}
