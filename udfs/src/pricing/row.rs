//! One price-book row (`finops.model_prices`) and the names of its price columns.

use std::fmt;

/// How a row's `model` is matched against a (normalised) model id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchKind {
    /// The id equals `model` (case-insensitive).
    Exact,
    /// The id starts with `model` (case-insensitive); the longest prefix wins.
    Prefix,
    /// `model` is a regular expression searched in the id (case-insensitive).
    Regex,
}

impl MatchKind {
    /// Parses `exact`, `prefix` or `regex`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "exact" => Some(Self::Exact),
            "prefix" => Some(Self::Prefix),
            "regex" => Some(Self::Regex),
            _ => None,
        }
    }

    /// The SQL name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Prefix => "prefix",
            Self::Regex => "regex",
        }
    }
}

/// One row of the price book. Prices are USD per million tokens as `i128` at
/// [`crate::MONEY_SCALE`]; `None` means the catalog has no such price.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceRow {
    /// Canonical provider (`openai`, `aws_bedrock`, ...).
    pub provider: String,
    /// Catalog model id, prefix or regex, per `match_kind`.
    pub model: String,
    /// How `model` matches ids.
    pub match_kind: Option<MatchKind>,
    /// First instant (UTC microseconds) the row applies to; `None` = since always.
    pub valid_from: Option<i64>,
    /// First instant (UTC microseconds) the row no longer applies to; `None` = still valid.
    pub valid_to: Option<i64>,
    /// Uncached input tokens.
    pub input: Option<i128>,
    /// Output tokens, reasoning included.
    pub output: Option<i128>,
    /// Cache-read input tokens.
    pub cache_read: Option<i128>,
    /// Cache-write input tokens, 5-minute retention.
    pub cache_write: Option<i128>,
    /// Cache-write input tokens, 1-hour retention.
    pub cache_write_1h: Option<i128>,
    /// Input under the batch service tier.
    pub batch_input: Option<i128>,
    /// Output under the batch service tier.
    pub batch_output: Option<i128>,
    /// Input under the priority service tier.
    pub priority_input: Option<i128>,
    /// Output under the priority service tier.
    pub priority_output: Option<i128>,
    /// Input under the flex service tier.
    pub flex_input: Option<i128>,
    /// Output under the flex service tier.
    pub flex_output: Option<i128>,
    /// Requests whose `input_tokens` exceed this are priced entirely at the tier prices.
    pub tier_threshold_tokens: Option<i64>,
    /// Long-context input price.
    pub tier_input: Option<i128>,
    /// Long-context output price.
    pub tier_output: Option<i128>,
    /// Long-context cache-read price.
    pub tier_cache_read: Option<i128>,
    /// Long-context cache-write price.
    pub tier_cache_write: Option<i128>,
    /// Explicit model tier (`frontier`, `mid`, `small`) overriding the price band.
    pub tier: Option<String>,
    /// Where the price comes from.
    pub source: String,
}

impl PriceRow {
    /// Identifier of this row, used as `price_version`:
    /// `provider/model/match@valid_from` (`-inf` when open-ended).
    pub fn version(&self) -> String {
        let from = match self.valid_from {
            Some(micros) => chrono::DateTime::from_timestamp_micros(micros)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                .unwrap_or_else(|| micros.to_string()),
            None => "-inf".to_string(),
        };
        let kind = self.match_kind.map(MatchKind::as_str).unwrap_or("exact");
        format!("{}/{}/{}@{}", self.provider, self.model, kind, from)
    }

    /// Whether the row applies at `ts` (UTC microseconds).
    pub fn covers(&self, ts: i64) -> bool {
        self.valid_from.is_none_or(|from| ts >= from) && self.valid_to.is_none_or(|to| ts < to)
    }

    /// The price of one kind, as stored (no fallbacks).
    pub fn price(&self, kind: PriceKind) -> Option<i128> {
        match kind {
            PriceKind::Input => self.input,
            PriceKind::Output => self.output,
            PriceKind::CacheRead => self.cache_read,
            PriceKind::CacheWrite => self.cache_write,
            PriceKind::CacheWrite1h => self.cache_write_1h,
            PriceKind::BatchInput => self.batch_input,
            PriceKind::BatchOutput => self.batch_output,
            PriceKind::PriorityInput => self.priority_input,
            PriceKind::PriorityOutput => self.priority_output,
            PriceKind::FlexInput => self.flex_input,
            PriceKind::FlexOutput => self.flex_output,
            PriceKind::TierInput => self.tier_input,
            PriceKind::TierOutput => self.tier_output,
            PriceKind::TierCacheRead => self.tier_cache_read,
            PriceKind::TierCacheWrite => self.tier_cache_write,
        }
    }
}

impl PriceRow {
    /// Sets the price of one kind.
    pub fn set_price(&mut self, kind: PriceKind, value: Option<i128>) {
        let slot = match kind {
            PriceKind::Input => &mut self.input,
            PriceKind::Output => &mut self.output,
            PriceKind::CacheRead => &mut self.cache_read,
            PriceKind::CacheWrite => &mut self.cache_write,
            PriceKind::CacheWrite1h => &mut self.cache_write_1h,
            PriceKind::BatchInput => &mut self.batch_input,
            PriceKind::BatchOutput => &mut self.batch_output,
            PriceKind::PriorityInput => &mut self.priority_input,
            PriceKind::PriorityOutput => &mut self.priority_output,
            PriceKind::FlexInput => &mut self.flex_input,
            PriceKind::FlexOutput => &mut self.flex_output,
            PriceKind::TierInput => &mut self.tier_input,
            PriceKind::TierOutput => &mut self.tier_output,
            PriceKind::TierCacheRead => &mut self.tier_cache_read,
            PriceKind::TierCacheWrite => &mut self.tier_cache_write,
        };
        *slot = value;
    }
}

/// A price column of the book, as named in SQL (`model_price(..., 'cache_read')`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PriceKind {
    /// `input`
    Input,
    /// `output`
    Output,
    /// `cache_read`
    CacheRead,
    /// `cache_write`
    CacheWrite,
    /// `cache_write_1h`
    CacheWrite1h,
    /// `batch_input`
    BatchInput,
    /// `batch_output`
    BatchOutput,
    /// `priority_input`
    PriorityInput,
    /// `priority_output`
    PriorityOutput,
    /// `flex_input`
    FlexInput,
    /// `flex_output`
    FlexOutput,
    /// `tier_input`
    TierInput,
    /// `tier_output`
    TierOutput,
    /// `tier_cache_read`
    TierCacheRead,
    /// `tier_cache_write`
    TierCacheWrite,
}

impl PriceKind {
    /// Every kind, in column order.
    pub const ALL: [PriceKind; 15] = [
        Self::Input,
        Self::Output,
        Self::CacheRead,
        Self::CacheWrite,
        Self::CacheWrite1h,
        Self::BatchInput,
        Self::BatchOutput,
        Self::PriorityInput,
        Self::PriorityOutput,
        Self::FlexInput,
        Self::FlexOutput,
        Self::TierInput,
        Self::TierOutput,
        Self::TierCacheRead,
        Self::TierCacheWrite,
    ];

    /// The SQL name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::Output => "output",
            Self::CacheRead => "cache_read",
            Self::CacheWrite => "cache_write",
            Self::CacheWrite1h => "cache_write_1h",
            Self::BatchInput => "batch_input",
            Self::BatchOutput => "batch_output",
            Self::PriorityInput => "priority_input",
            Self::PriorityOutput => "priority_output",
            Self::FlexInput => "flex_input",
            Self::FlexOutput => "flex_output",
            Self::TierInput => "tier_input",
            Self::TierOutput => "tier_output",
            Self::TierCacheRead => "tier_cache_read",
            Self::TierCacheWrite => "tier_cache_write",
        }
    }

    /// Parses a SQL name (case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// The valid names, comma separated, for error messages.
    pub fn valid_names() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for PriceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
