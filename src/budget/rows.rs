//! `finops.budgets` rows as typed values, and the rules every row must follow (SPEC 3.7):
//! a known scope and period, an amount of at least zero, thresholds a list of positive
//! percentages, a notify target that is `log` or an http(s) URL.
//!
//! Owns reading and validating budget rows. It must not read usage or evaluate spend.

use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Decimal128Array, RecordBatch, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;

use super::period::{PERIOD_NAMES, Period};
use crate::error::{Error, Result};
use crate::schema::{MONEY_SCALE, money_type};

/// The scopes a budget can cover.
pub const SCOPES: [&str; 9] = [
    "org",
    "team",
    "app",
    "feature",
    "user_id",
    "api_key_id",
    "provider",
    "model",
    "tag",
];

/// Thresholds when a row gives none.
pub const DEFAULT_THRESHOLDS: &str = "50,80,100";

/// What spend a budget covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Everything.
    Org,
    /// Rows of `finops.usage` whose `column` equals `value`.
    Column {
        /// A column of `finops.usage`.
        column: &'static str,
        /// The value it must have.
        value: String,
    },
    /// Rows whose `tags` JSON object has `key` set to `value`.
    Tag {
        /// The tag key.
        key: String,
        /// Its value.
        value: String,
    },
}

impl Scope {
    /// Parse `scope` and `scope_value` as stored.
    pub fn parse(scope: &str, value: Option<&str>) -> std::result::Result<Scope, String> {
        let value = value.map(str::trim).filter(|v| !v.is_empty());
        match (scope, value) {
            ("org", None) => Ok(Scope::Org),
            ("org", Some(v)) => Err(format!(
                "scope org covers all spend and takes no scope_value (got \"{v}\")"
            )),
            ("tag", Some(v)) => match v.split_once('=') {
                Some((k, val)) if !k.trim().is_empty() => Ok(Scope::Tag {
                    key: k.trim().to_string(),
                    value: val.trim().to_string(),
                }),
                _ => Err(format!(
                    "scope tag needs scope_value key=value (got \"{v}\")"
                )),
            },
            (s, _) if !SCOPES.contains(&s) => Err(format!(
                "unknown scope \"{s}\" (expected one of {})",
                SCOPES.join(", ")
            )),
            (s, None) => Err(format!("scope {s} needs a scope_value")),
            (s, Some(v)) => Ok(Scope::Column {
                column: SCOPES.into_iter().find(|c| *c == s).unwrap_or("team"),
                value: v.to_string(),
            }),
        }
    }

    /// A SQL predicate over `finops.usage` selecting this scope's rows.
    pub fn predicate(&self) -> String {
        match self {
            Scope::Org => "TRUE".to_string(),
            Scope::Column { column, value } => format!("{column} = {}", quote(value)),
            Scope::Tag { key, value } => {
                format!("tag_value(tags, {}) = {}", quote(key), quote(value))
            }
        }
    }

    /// Whether a reservation for `(scope, value)` is held against this scope.
    pub fn matches(&self, scope: &str, value: Option<&str>) -> bool {
        match Scope::parse(scope, value) {
            Ok(other) => &other == self,
            Err(_) => false,
        }
    }
}

/// A SQL string literal.
pub fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// One row of `finops.budgets`.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// `budget_id`.
    pub id: String,
    /// `scope` as stored.
    pub scope_name: String,
    /// `scope_value` as stored.
    pub scope_value: Option<String>,
    /// The parsed scope.
    pub scope: Scope,
    /// `period`.
    pub period: Period,
    /// `period` as stored.
    pub period_name: String,
    /// `amount` in units of 10^-12 USD.
    pub amount: i128,
    /// `thresholds` as percentages, ascending.
    pub thresholds: Vec<f64>,
    /// `thresholds` as stored.
    pub thresholds_text: String,
    /// `owner`.
    pub owner: Option<String>,
    /// `notify`.
    pub notify: Option<String>,
    /// `hard_cap`.
    pub hard_cap: bool,
}

impl Budget {
    /// The percentage of the amount at which the budget warns: the highest threshold below
    /// 100, else 80.
    pub fn warn_pct(&self) -> f64 {
        self.thresholds
            .iter()
            .copied()
            .filter(|t| *t < 100.0)
            .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))))
            .unwrap_or(80.0)
    }
}

/// Parse `thresholds` (`50,80,100`).
pub fn parse_thresholds(text: &str) -> std::result::Result<Vec<f64>, String> {
    let mut out = Vec::new();
    for part in text.split(',') {
        let part = part.trim().trim_end_matches('%');
        match part.parse::<f64>() {
            Ok(v) if v.is_finite() && v > 0.0 => out.push(v),
            _ => {
                return Err(format!(
                    "thresholds must be a comma-separated list of positive percentages such as \
                     50,80,100 (got \"{text}\")"
                ));
            }
        }
    }
    out.sort_by(f64::total_cmp);
    out.dedup();
    Ok(out)
}

/// Check a `notify` target: `log` or an http(s) URL.
pub fn check_notify(notify: Option<&str>) -> std::result::Result<(), String> {
    match notify.map(str::trim).filter(|n| !n.is_empty()) {
        None | Some("log") => Ok(()),
        Some(n) => match url::Url::parse(n) {
            Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Ok(()),
            _ => Err(format!(
                "notify must be 'log' or an http(s) webhook URL (got \"{n}\")"
            )),
        },
    }
}

fn text_column(batch: &RecordBatch, name: &str) -> Result<StringArray> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| Error::Internal(format!("column {name} missing")))?;
    let column = cast(column, &DataType::Utf8).map_err(crate::error::arrow_error)?;
    Ok(column.as_string::<i32>().clone())
}

fn opt(array: &StringArray, i: usize) -> Option<String> {
    array.is_valid(i).then(|| array.value(i).to_string())
}

/// Read and validate every budget in `batches`; the first bad row fails with SQLSTATE 23514
/// and a message naming the budget, and so do two rows with the same `budget_id`.
pub fn budgets_from_batches(batches: &[RecordBatch]) -> Result<Vec<Budget>> {
    let mut out: Vec<Budget> = Vec::new();
    for batch in batches {
        let ids = text_column(batch, "budget_id")?;
        let scopes = text_column(batch, "scope")?;
        let values = text_column(batch, "scope_value")?;
        let periods = text_column(batch, "period")?;
        let thresholds = text_column(batch, "thresholds")?;
        let owners = text_column(batch, "owner")?;
        let notify = text_column(batch, "notify")?;
        let amounts = batch
            .column_by_name("amount")
            .ok_or_else(|| Error::Internal("column amount missing".into()))?;
        let amounts = cast(amounts, &money_type()).map_err(crate::error::arrow_error)?;
        let amounts: &Decimal128Array = amounts.as_primitive();
        let caps = batch
            .column_by_name("hard_cap")
            .ok_or_else(|| Error::Internal("column hard_cap missing".into()))?;
        let caps = cast(caps, &DataType::Boolean).map_err(crate::error::arrow_error)?;
        let caps: &BooleanArray = caps.as_boolean();
        for i in 0..batch.num_rows() {
            let id = opt(&ids, i).unwrap_or_default();
            let bad = |message: String| Error::CheckViolation {
                message: format!("finops.budgets: budget \"{id}\": {message}"),
            };
            if id.trim().is_empty() {
                return Err(Error::CheckViolation {
                    message: "finops.budgets: budget_id must not be empty".into(),
                });
            }
            if out.iter().any(|b| b.id == id) {
                return Err(bad("budget_id already exists".into()));
            }
            let scope_name = opt(&scopes, i).unwrap_or_default();
            let scope_value = opt(&values, i);
            let scope = Scope::parse(&scope_name, scope_value.as_deref()).map_err(bad)?;
            let period_name = opt(&periods, i).unwrap_or_default();
            let period = Period::parse(&period_name).ok_or_else(|| {
                bad(format!(
                    "unknown period \"{period_name}\" (expected one of {PERIOD_NAMES})"
                ))
            })?;
            if amounts.is_null(i) {
                return Err(bad("amount must be given".into()));
            }
            let amount = amounts.value(i);
            if amount < 0 {
                return Err(bad(format!(
                    "amount must be at least 0 (got {})",
                    format_money(amount)
                )));
            }
            let thresholds_text =
                opt(&thresholds, i).unwrap_or_else(|| DEFAULT_THRESHOLDS.to_string());
            let parsed = parse_thresholds(&thresholds_text).map_err(bad)?;
            let notify_target = opt(&notify, i);
            check_notify(notify_target.as_deref()).map_err(bad)?;
            out.push(Budget {
                id,
                scope_name,
                scope_value,
                scope,
                period,
                period_name,
                amount,
                thresholds: parsed,
                thresholds_text,
                owner: opt(&owners, i),
                notify: notify_target,
                hard_cap: caps.is_valid(i) && caps.value(i),
            });
        }
    }
    Ok(out)
}

/// A money value (units of 10^-12) as decimal text with trailing zeros trimmed to cents.
pub fn format_money(raw: i128) -> String {
    let scale = 10i128.pow(MONEY_SCALE as u32);
    let sign = if raw < 0 { "-" } else { "" };
    let abs = raw.unsigned_abs();
    let whole = abs / scale as u128;
    let frac = format!("{:012}", abs % scale as u128);
    let trimmed = frac.trim_end_matches('0');
    let frac = if trimmed.len() < 2 {
        &frac[..2]
    } else {
        trimmed
    };
    format!("{sign}{whole}.{frac}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_filter() {
        assert_eq!(Scope::parse("org", None), Ok(Scope::Org));
        assert!(Scope::parse("org", Some("x")).is_err());
        assert!(Scope::parse("team", None).is_err());
        assert!(Scope::parse("galaxy", Some("x")).is_err());
        assert!(Scope::parse("tag", Some("nokey")).is_err());
        let tag = Scope::parse("tag", Some("env=prod")).expect("tag");
        assert_eq!(tag.predicate(), "tag_value(tags, 'env') = 'prod'");
        let team = Scope::parse("team", Some("o'neil")).expect("team");
        assert_eq!(team.predicate(), "team = 'o''neil'");
        assert!(team.matches("team", Some("o'neil")));
        assert!(!team.matches("app", Some("o'neil")));
    }

    #[test]
    fn thresholds_are_positive_percentages() {
        assert_eq!(parse_thresholds("100, 50,80"), Ok(vec![50.0, 80.0, 100.0]));
        assert!(parse_thresholds("50,-1").is_err());
        assert!(parse_thresholds("").is_err());
        assert!(parse_thresholds("fifty").is_err());
    }

    #[test]
    fn notify_is_log_or_a_url() {
        assert!(check_notify(None).is_ok());
        assert!(check_notify(Some("log")).is_ok());
        assert!(check_notify(Some("https://hooks.example.com/x")).is_ok());
        assert!(check_notify(Some("email me")).is_err());
    }

    #[test]
    fn money_formats_to_cents_at_least() {
        assert_eq!(format_money(1_500_000_000_000), "1.50");
        assert_eq!(format_money(-1_000_000_000_000), "-1.00");
        assert_eq!(format_money(1_234_567_000_000), "1.234567");
    }
}
