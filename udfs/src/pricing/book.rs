//! The in-memory price book: rows indexed by provider and model, time-sorted validity
//! ranges per model, and memoised model-id resolution. Immutable once built; replaced
//! as a whole through [`super::PriceBookHandle`].

use std::sync::{Arc, RwLock};

use datafusion::common::{DataFusionError, Result};
use regex::{Regex, RegexBuilder};
use rustc_hash::FxHashMap;

use super::catalog::{BUNDLED_CATALOG_CSV, parse_catalog_csv};
use super::resolve::{canonical_provider, exact_only, fallback_providers, lookup_candidates};
use super::row::{MatchKind, PriceRow};
use crate::cost::semantics::RowRates;

/// Memoised resolutions are dropped past this many distinct ids, bounding memory when a
/// feed invents ids (fine-tune suffixes, request ids in the model column).
const MEMO_LIMIT: usize = 100_000;

/// One catalog model: the rows of one (provider, model, match kind), sorted by `valid_from`.
#[derive(Debug, Clone)]
pub struct ModelEntry {
    /// Canonical provider.
    pub provider: String,
    /// Catalog model id (or prefix / regex text).
    pub model: String,
    /// How the entry matches ids.
    pub match_kind: MatchKind,
    rows: Vec<u32>,
}

/// Result of resolving a reported (provider, model) pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Index of the matched [`ModelEntry`].
    pub entry: u32,
    /// Catalog id: the entry's model for exact and prefix entries, the matched normalised
    /// id for regex entries (a pattern is not an id).
    pub canonical: Arc<str>,
}

#[derive(Debug, Default)]
struct ProviderIndex {
    exact: FxHashMap<String, u32>,
    /// Longest prefix first.
    prefix: Vec<(String, u32)>,
    regex: Vec<(Regex, u32)>,
}

/// The price book. Build with [`PriceBook::bundled`] or [`PriceBook::from_rows`].
#[derive(Debug)]
pub struct PriceBook {
    rows: Vec<PriceRow>,
    rates: Vec<Option<RowRates>>,
    entries: Vec<ModelEntry>,
    providers: FxHashMap<String, ProviderIndex>,
    memo: RwLock<FxHashMap<(String, String), Option<Resolved>>>,
}

impl PriceBook {
    /// The catalog bundled with the crate (`udfs/data/catalog.csv`).
    pub fn bundled() -> Result<PriceBook> {
        Self::from_rows(parse_catalog_csv(BUNDLED_CATALOG_CSV)?)
    }

    /// Builds the index over `rows`. Fails on an invalid regex or on overlapping validity
    /// ranges of one model, so a bad price book is refused rather than half-applied.
    pub fn from_rows(mut rows: Vec<PriceRow>) -> Result<PriceBook> {
        for row in &mut rows {
            row.provider = canonical_provider(&row.provider);
        }
        let mut entries: Vec<ModelEntry> = Vec::new();
        let mut by_key: FxHashMap<(String, String, MatchKind), u32> = FxHashMap::default();
        for (index, row) in rows.iter().enumerate() {
            let kind = row.match_kind.unwrap_or(MatchKind::Exact);
            let key = (row.provider.clone(), row.model.to_ascii_lowercase(), kind);
            let next = entries.len() as u32;
            let id = *by_key.entry(key).or_insert(next);
            if id == next {
                entries.push(ModelEntry {
                    provider: row.provider.clone(),
                    model: row.model.clone(),
                    match_kind: kind,
                    rows: Vec::new(),
                });
            }
            entries[id as usize].rows.push(index as u32);
        }
        let mut providers: FxHashMap<String, ProviderIndex> = FxHashMap::default();
        for (id, entry) in entries.iter_mut().enumerate() {
            entry
                .rows
                .sort_by_key(|&r| rows[r as usize].valid_from.unwrap_or(i64::MIN));
            for pair in entry.rows.windows(2) {
                let (a, b) = (&rows[pair[0] as usize], &rows[pair[1] as usize]);
                let a_end = a.valid_to.unwrap_or(i64::MAX);
                if a_end > b.valid_from.unwrap_or(i64::MIN) {
                    return Err(DataFusionError::Plan(format!(
                        "price book: overlapping validity for {}/{} ({} and {})",
                        entry.provider,
                        entry.model,
                        a.version(),
                        b.version()
                    )));
                }
            }
            let index = providers.entry(entry.provider.clone()).or_default();
            let key = entry.model.to_ascii_lowercase();
            match entry.match_kind {
                MatchKind::Exact => {
                    index.exact.insert(key, id as u32);
                }
                MatchKind::Prefix => index.prefix.push((key, id as u32)),
                MatchKind::Regex => {
                    let regex = RegexBuilder::new(&entry.model)
                        .case_insensitive(true)
                        .build()
                        .map_err(|e| {
                            DataFusionError::Plan(format!(
                                "price book: bad regex for {}: {e}",
                                entry.provider
                            ))
                        })?;
                    index.regex.push((regex, id as u32));
                }
            }
        }
        for index in providers.values_mut() {
            index
                .prefix
                .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        }
        let rates = rows.iter().map(RowRates::from_row).collect();
        Ok(PriceBook {
            rows,
            rates,
            entries,
            providers,
            memo: RwLock::default(),
        })
    }

    /// All rows, in load order.
    pub fn rows(&self) -> &[PriceRow] {
        &self.rows
    }

    /// The entry with index `id` (from [`Resolved::entry`]).
    pub fn entry(&self, id: u32) -> &ModelEntry {
        &self.entries[id as usize]
    }

    /// Resolves a reported (provider, model) to a catalog entry: for each candidate id of
    /// [`super::model_candidates`], most specific first, an exact entry beats the longest prefix
    /// beats a regex; the provider's own rows come before its fallbacks (Azure → OpenAI,
    /// Vertex → Gemini / Anthropic). `None` = unpriced.
    pub fn resolve(&self, provider: &str, model: &str) -> Option<Resolved> {
        let key = (provider.to_string(), model.to_string());
        if let Ok(memo) = self.memo.read()
            && let Some(hit) = memo.get(&key)
        {
            return hit.clone();
        }
        let resolved = self.resolve_uncached(provider, model);
        if let Ok(mut memo) = self.memo.write() {
            if memo.len() >= MEMO_LIMIT {
                memo.clear();
            }
            memo.insert(key, resolved.clone());
        }
        resolved
    }

    fn resolve_uncached(&self, provider: &str, model: &str) -> Option<Resolved> {
        let provider = canonical_provider(provider);
        let candidates = lookup_candidates(&provider, model);
        let own = std::iter::once(provider.as_str());
        for name in own.chain(fallback_providers(&provider).iter().copied()) {
            let Some(index) = self.providers.get(name) else {
                continue;
            };
            for candidate in &candidates {
                let (exact_only, candidate) = exact_only(candidate);
                if let Some(&id) = index.exact.get(candidate) {
                    return Some(self.resolved(id, None));
                }
                // An ARN or an Azure meter name is priced only by a rule naming it exactly;
                // patterns apply to the model id read out of it, a later candidate.
                if exact_only {
                    continue;
                }
                if let Some((_, id)) = index.prefix.iter().find(|(p, _)| candidate.starts_with(p)) {
                    return Some(self.resolved(*id, None));
                }
                if let Some((_, id)) = index.regex.iter().find(|(r, _)| r.is_match(candidate)) {
                    return Some(self.resolved(*id, Some(candidate)));
                }
            }
        }
        None
    }

    fn resolved(&self, id: u32, matched: Option<&str>) -> Resolved {
        let canonical = matched.unwrap_or(&self.entries[id as usize].model);
        Resolved {
            entry: id,
            canonical: Arc::from(canonical),
        }
    }

    /// Index of the row of `entry` valid at `ts` (UTC microseconds), if any.
    #[inline]
    pub fn row_index_at(&self, entry: u32, ts: i64) -> Option<u32> {
        let rows = &self.entries[entry as usize].rows;
        if let [only] = rows.as_slice() {
            return self.rows[*only as usize].covers(ts).then_some(*only);
        }
        rows.iter()
            .rev()
            .copied()
            .find(|&r| self.rows[r as usize].covers(ts))
    }

    /// Indexes of the rows of `entry`, sorted by `valid_from`; their validity ranges do not
    /// overlap.
    #[inline]
    pub fn entry_rows(&self, entry: u32) -> &[u32] {
        &self.entries[entry as usize].rows
    }

    /// The row with index `row`.
    pub fn row(&self, row: u32) -> &PriceRow {
        &self.rows[row as usize]
    }

    /// Precomputed cost rates of row `row`; `None` when it has no input price.
    #[inline]
    pub fn rates(&self, row: u32) -> Option<&RowRates> {
        self.rates[row as usize].as_ref()
    }

    /// The row pricing (provider, model) at `ts` (UTC microseconds).
    pub fn price_at(&self, provider: &str, model: &str, ts: i64) -> Option<&PriceRow> {
        let resolved = self.resolve(provider, model)?;
        self.row_index_at(resolved.entry, ts).map(|r| self.row(r))
    }

    /// Entries of one provider with exact ids (the models a user can pick).
    pub fn exact_entries<'a>(&'a self, provider: &'a str) -> impl Iterator<Item = u32> + 'a {
        self.providers
            .get(provider)
            .into_iter()
            .flat_map(|index| index.exact.values().copied())
    }
}
