//! Per-batch interning of (provider, model) pairs: every row of a batch gets a dense key id,
//! so model resolution and price lookup run once per distinct pair instead of once per row.
//!
//! The table is an open-addressing hash table specialised for short ids: each string is read
//! as a few 8-byte words straight from the array's value buffer (whatever its length, so no
//! branch on it), the hash mixes some of them, and every hit is confirmed on the full
//! strings: the words are the whole string up to 40 bytes of model and 16 of provider,
//! longer ones are compared byte for byte. Two different pairs never share an id. In front
//! of it sits a small direct-mapped cache holding the words themselves, so most rows cost one
//! multiply, one load and a compare of words already read. `Utf8View` arguments (what a scan
//! gives) have one more cache in front, keyed by the two 16-byte views, which reads no string
//! bytes at all (see [`intern_views`]).

use datafusion::arrow::array::{Array, LargeStringArray, StringArray, StringViewArray};

use crate::args::Text;

/// Key id of a row whose provider or model is NULL.
pub(crate) const NO_KEY: u32 = u32::MAX;

/// Distinct (provider, model) pairs of one batch, and each row's key id.
#[derive(Debug)]
pub(crate) struct BatchKeys<'a> {
    /// The distinct pairs; a key id indexes this.
    pub keys: Vec<(&'a str, &'a str)>,
    /// Key id per row, [`NO_KEY`] when the provider or the model is NULL.
    pub rows: Vec<u32>,
}

impl<'a> BatchKeys<'a> {
    /// Interns the first `n` rows of `provider` and `model`.
    pub fn intern(provider: &Text<'a>, model: &Text<'a>, n: usize) -> Self {
        match (provider, model) {
            (Text::Utf8(p), Text::Utf8(m)) => intern_rows(*p, *m, n),
            (Text::View(p), Text::View(m)) => intern_views(p, m, n),
            (Text::Large(p), Text::Large(m)) => intern_rows(*p, *m, n),
            (p, m) => intern_rows(p, m, n),
        }
    }

    /// One pair for every row (scalar arguments); `None` = a NULL provider or model.
    pub fn constant(pair: Option<(&'a str, &'a str)>, n: usize) -> Self {
        match pair {
            Some(pair) => Self {
                keys: vec![pair],
                rows: vec![0; n],
            },
            None => Self {
                keys: Vec::new(),
                rows: vec![NO_KEY; n],
            },
        }
    }
}

/// Row access shared by the string array types.
trait Strings<'a> {
    fn has_nulls(&self) -> bool;
    fn is_null_at(&self, i: usize) -> bool;
    /// Row `i` as `bytes[start..end]`, where `bytes` may extend beyond the value (the
    /// array's value buffer), which lets [`Sample::of`] read whole words without copying.
    fn bytes(&self, i: usize) -> (&'a [u8], usize, usize);
    fn text(&self, i: usize) -> &'a str;
}

macro_rules! offset_strings_for {
    ($t:ty) => {
        impl<'a> Strings<'a> for &'a $t {
            #[inline]
            fn has_nulls(&self) -> bool {
                self.null_count() > 0
            }
            #[inline]
            fn is_null_at(&self, i: usize) -> bool {
                self.is_null(i)
            }
            #[inline]
            fn bytes(&self, i: usize) -> (&'a [u8], usize, usize) {
                let offsets = self.value_offsets();
                (
                    self.values().as_slice(),
                    offsets[i] as usize,
                    offsets[i + 1] as usize,
                )
            }
            #[inline]
            fn text(&self, i: usize) -> &'a str {
                self.value(i)
            }
        }
    };
}
offset_strings_for!(StringArray);
offset_strings_for!(LargeStringArray);

impl<'a> Strings<'a> for &'a StringViewArray {
    #[inline]
    fn has_nulls(&self) -> bool {
        self.null_count() > 0
    }
    #[inline]
    fn is_null_at(&self, i: usize) -> bool {
        self.is_null(i)
    }
    /// A string of up to 12 bytes lies inside its 16-byte view (after the 4-byte length, zero
    /// padded), a longer one in a data buffer: either way the words around it are read where
    /// they are, so a short value is not copied out first.
    #[inline]
    fn bytes(&self, i: usize) -> (&'a [u8], usize, usize) {
        let view = self.views()[i];
        let len = view as u32 as usize;
        if len <= 12 {
            let start = i * 16 + 4;
            (self.views().inner().as_slice(), start, start + len)
        } else {
            let buffer = (view >> 64) as u32 as usize;
            let offset = (view >> 96) as u32 as usize;
            (self.data_buffers()[buffer].as_slice(), offset, offset + len)
        }
    }
    #[inline]
    fn text(&self, i: usize) -> &'a str {
        self.value(i)
    }
}

impl<'a> Strings<'a> for &Text<'a> {
    fn has_nulls(&self) -> bool {
        true
    }
    #[inline]
    fn is_null_at(&self, i: usize) -> bool {
        self.get(i).is_none()
    }
    #[inline]
    fn bytes(&self, i: usize) -> (&'a [u8], usize, usize) {
        let value = self.text(i).as_bytes();
        (value, 0, value.len())
    }
    #[inline]
    fn text(&self, i: usize) -> &'a str {
        self.get(i).unwrap_or_default()
    }
}

fn intern_rows<'a, P: Strings<'a>, M: Strings<'a>>(
    provider: P,
    model: M,
    n: usize,
) -> BatchKeys<'a> {
    let mut table = KeyTable::new();
    let mut rows = vec![NO_KEY; n];
    let mut front = vec![FrontSlot::EMPTY; FRONT_SLOTS];
    let nulls = provider.has_nulls() || model.has_nulls();
    for (i, row) in rows.iter_mut().enumerate() {
        if nulls && (provider.is_null_at(i) || model.is_null_at(i)) {
            continue;
        }
        *row = key_of_row(&mut table, &mut front, &provider, &model, i);
    }
    table.into_keys(rows)
}

/// [`intern_rows`] of views, behind one more cache keyed by the two 16-byte views themselves.
/// Within one array equal views are equal strings (a view is the length and either the whole
/// string or the buffer and offset of its bytes), and the Parquet reader gives every row of a
/// dictionary-encoded column the view of its dictionary entry: a batch repeats a few views,
/// so most rows cost two loads, one multiply and one compare, and read no string bytes.
fn intern_views<'a>(
    provider: &'a StringViewArray,
    model: &'a StringViewArray,
    n: usize,
) -> BatchKeys<'a> {
    let mut table = KeyTable::new();
    let mut rows = vec![NO_KEY; n];
    let mut front = vec![FrontSlot::EMPTY; FRONT_SLOTS];
    let mut seen = vec![ViewSlot::EMPTY; VIEW_SLOTS];
    let nulls = provider.null_count() > 0 || model.null_count() > 0;
    let (provider_views, model_views) = (&provider.views()[..n], &model.views()[..n]);
    for (i, row) in rows.iter_mut().enumerate() {
        if nulls && (provider.is_null(i) || model.is_null(i)) {
            continue;
        }
        let (p, m) = (provider_views[i], model_views[i]);
        let slot = &mut seen[view_index(p ^ m.rotate_left(61))];
        if slot.provider == p && slot.model == m {
            *row = slot.id;
            continue;
        }
        let id = key_of_row(&mut table, &mut front, &provider, &model, i);
        *slot = ViewSlot {
            provider: p,
            model: m,
            id,
        };
        *row = id;
    }
    table.into_keys(rows)
}

/// Key id of row `i`, whose provider and model are not NULL: from the front cache when it
/// holds the pair, else from the table (adding the pair when new).
#[inline(always)]
fn key_of_row<'a, P: Strings<'a>, M: Strings<'a>>(
    table: &mut KeyTable<'a>,
    front: &mut [FrontSlot],
    provider: &P,
    model: &M,
    i: usize,
) -> u32 {
    let (p, m) = (provider.bytes(i), model.bytes(i));
    let (p, m) = (
        ProviderSample::of(p.0, p.1, p.2),
        ModelSample::of(m.0, m.1, m.2),
    );
    let (words, lengths) = front_key(&p, &m);
    let slot = &mut front[front_index(&words, lengths)];
    if slot.holds(&words, lengths) {
        return slot.id;
    }
    let id = match table.find(&p, &m) {
        Some(id) => id,
        None => insert_row(table, provider, model, i),
    };
    // Only pairs the words hold in full: equal words are then equal strings.
    if p.len <= 16 && m.len <= 40 {
        *slot = FrontSlot { words, lengths, id };
    }
    id
}

/// Slots of the view cache of [`intern_views`] and [`map_views`].
const VIEW_SLOTS: usize = 256;

/// One slot of the view cache: a pair of views and the id of their strings.
#[derive(Clone, Copy)]
struct ViewSlot {
    provider: u128,
    model: u128,
    id: u32,
}

impl ViewSlot {
    /// No row has this view: its length would put the string in buffer number `u32::MAX`.
    const EMPTY: ViewSlot = ViewSlot {
        provider: u128::MAX,
        model: u128::MAX,
        id: NO_KEY,
    };
}

/// View-cache slot of a view (or a fold of two): one multiply over its two halves.
#[inline(always)]
fn view_index(view: u128) -> usize {
    let folded = (view as u64) ^ ((view >> 64) as u64).rotate_left(29);
    (folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize % VIEW_SLOTS
}

/// Slots of the direct-mapped cache in front of the [`KeyTable`].
const FRONT_SLOTS: usize = 256;

/// One slot of the front cache: a pair's sampled words, its lengths and its id. A batch's
/// few distinct pairs mostly sit in their own slots, so a row's id is one hash, one load and
/// one compare of the words it already read; a miss (or two pairs sharing a slot) falls
/// back to the table and refills the slot.
#[derive(Clone, Copy)]
struct FrontSlot {
    words: [u64; 7],
    /// Model length, provider length above bit 32; `u64::MAX` when empty.
    lengths: u64,
    id: u32,
}

impl FrontSlot {
    const EMPTY: FrontSlot = FrontSlot {
        words: [0; 7],
        lengths: u64::MAX,
        id: NO_KEY,
    };

    /// Whether the slot holds the pair of `words` and `lengths`: a fold of XORs, not a
    /// `memcmp` call.
    #[inline(always)]
    fn holds(&self, words: &[u64; 7], lengths: u64) -> bool {
        let diff = self
            .words
            .iter()
            .zip(words)
            .fold(self.lengths ^ lengths, |acc, (a, b)| acc | (a ^ b));
        diff == 0
    }
}

/// The words and lengths of a pair as the front cache compares them: the whole strings for a
/// provider of up to 16 bytes and a model of up to 40.
#[inline(always)]
fn front_key(provider: &ProviderSample<'_>, model: &ModelSample<'_>) -> ([u64; 7], u64) {
    (
        [
            provider.words[0],
            provider.tail,
            model.words[0],
            model.words[1],
            model.words[2],
            model.words[3],
            model.tail,
        ],
        (model.len as u64) | ((provider.len as u64) << 32),
    )
}

/// Front-cache slot of a pair: one multiply over its provider's first word, its model's
/// first and last words and the lengths.
#[inline(always)]
fn front_index(words: &[u64; 7], lengths: u64) -> usize {
    let folded = words[2] ^ words[6].rotate_left(29) ^ words[0].rotate_left(47) ^ lengths;
    (folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) as usize % FRONT_SLOTS
}

/// Adds row `i`'s pair, which a [`KeyTable::find`] just missed. Out of line and sampling the
/// strings again, so the lookup loop keeps no samples alive for the rare insert.
#[cold]
#[inline(never)]
fn insert_row<'a>(
    table: &mut KeyTable<'a>,
    provider: &impl Strings<'a>,
    model: &impl Strings<'a>,
    i: usize,
) -> u32 {
    let (p, m) = (provider.bytes(i), model.bytes(i));
    table.insert(
        ProviderSample::of(p.0, p.1, p.2),
        ModelSample::of(m.0, m.1, m.2),
        provider.text(i),
        model.text(i),
    )
}

/// `parse` of every row of `text` (`None` for NULL rows), calling `parse` once per distinct
/// value of up to 16 bytes (the few spellings of an enum-like column) through a small
/// direct-mapped cache; longer values are parsed on every row.
pub(crate) fn map_short<T: Copy>(
    text: &Text<'_>,
    n: usize,
    parse: impl Fn(&str) -> T,
) -> Vec<Option<T>> {
    match text {
        Text::Utf8(a) => map_rows(*a, n, parse),
        Text::Large(a) => map_rows(*a, n, parse),
        Text::View(a) => map_views(a, n, parse),
    }
}

/// [`map_rows`] of views: equal views are equal strings, so the cache is keyed by the view
/// alone; a value of up to 12 bytes is its view, and a dictionary-encoded column repeats the
/// views of its entries.
fn map_views<T: Copy>(
    strings: &StringViewArray,
    n: usize,
    parse: impl Fn(&str) -> T,
) -> Vec<Option<T>> {
    let mut cache: Vec<Option<(u128, T)>> = vec![None; VIEW_SLOTS];
    let nulls = strings.null_count() > 0;
    let views = &strings.views()[..n];
    views
        .iter()
        .enumerate()
        .map(|(i, &view)| {
            if nulls && strings.is_null(i) {
                return None;
            }
            let slot = &mut cache[view_index(view)];
            match slot {
                Some((seen, value)) if *seen == view => Some(*value),
                _ => {
                    let value = parse(strings.value(i));
                    *slot = Some((view, value));
                    Some(value)
                }
            }
        })
        .collect()
}

fn map_rows<'a, T: Copy>(
    strings: impl Strings<'a>,
    n: usize,
    parse: impl Fn(&str) -> T,
) -> Vec<Option<T>> {
    const SLOTS: usize = 128;
    let mut cache: Vec<Option<(ProviderSample<'a>, T)>> = vec![None; SLOTS];
    let nulls = strings.has_nulls();
    (0..n)
        .map(|i| {
            if nulls && strings.is_null_at(i) {
                return None;
            }
            let (buf, start, end) = strings.bytes(i);
            let sample = ProviderSample::of(buf, start, end);
            if sample.len > 16 {
                return Some(parse(strings.text(i)));
            }
            let slot = mix(
                sample.words[0] ^ 0x243f_6a88_85a3_08d3,
                sample.tail ^ sample.len as u64,
            ) as usize
                % SLOTS;
            match &cache[slot] {
                Some((seen, value)) if seen.same(&sample) => Some(*value),
                _ => {
                    let value = parse(strings.text(i));
                    cache[slot] = Some((sample, value));
                    Some(value)
                }
            }
        })
        .collect()
}

/// A string as its length, `W` words from its start and its last eight bytes: the whole
/// string when it is at most `8 * W + 8` bytes long, so comparing two samples is a few
/// integer compares without a branch on the length.
#[derive(Debug, Clone, Copy)]
struct Sample<'a, const W: usize> {
    len: usize,
    /// Words at byte 0, 8, ..., each at most at `len - 8`; zero-padded below 8 bytes.
    words: [u64; W],
    tail: u64,
    /// The string itself, compared in full only past `8 * W + 8` bytes.
    bytes: &'a [u8],
}

/// Provider names: up to 16 bytes are two words.
type ProviderSample<'a> = Sample<'a, 1>;
/// Model ids: up to 40 bytes are five words.
type ModelSample<'a> = Sample<'a, 4>;

impl<'a, const W: usize> Sample<'a, W> {
    /// The sample of `buf[start..end]`. Words are read from `buf`, past the string when it is
    /// shorter than eight bytes, and masked: no branch on the length.
    #[inline(always)]
    fn of(buf: &'a [u8], start: usize, end: usize) -> Self {
        let len = end - start;
        // `keep` bits of a word are the string's; shifts by 64 - keep are at most 64, and
        // `nonempty` clears the one shift by 64 (which wraps to 0).
        let keep = 8 * len.min(8) as u32;
        let nonempty = 0u64.wrapping_sub(u64::from(keep != 0));
        let mask = u64::MAX.wrapping_shr(64 - keep) & nonempty;
        let last = len.saturating_sub(8);
        let tail = if end >= 8 {
            load(buf, end - 8).wrapping_shr(64 - keep) & nonempty
        } else {
            load(&buf[start..end], 0) & mask
        };
        let mut words = [0u64; W];
        for (k, word) in words.iter_mut().enumerate() {
            *word = load(buf, start + (8 * k).min(last)) & mask;
        }
        Sample {
            len,
            words,
            tail,
            bytes: &buf[start..end],
        }
    }

    /// Whether both samples are of the same string.
    #[inline(always)]
    fn same(&self, other: &Self) -> bool {
        let diff = self
            .words
            .iter()
            .zip(&other.words)
            .fold(self.tail ^ other.tail, |acc, (a, b)| acc | (a ^ b));
        diff == 0 && self.len == other.len && (self.len <= 8 * W + 8 || self.bytes == other.bytes)
    }
}

/// Hash of a (provider, model) pair from its lengths and sampled words. Pairs that differ
/// only outside the hashed words collide and are told apart by [`Sample::same`].
#[inline(always)]
fn pair_hash(provider: &ProviderSample<'_>, model: &ModelSample<'_>) -> u64 {
    const K0: u64 = 0x243f_6a88_85a3_08d3;
    const K1: u64 = 0x1319_8a2e_0370_7344;
    const K2: u64 = 0xa409_3822_299f_31d0;
    const K3: u64 = 0x082e_fa98_ec4e_6c89;
    let lengths = (model.len as u64) | ((provider.len as u64) << 32);
    mix(model.words[0] ^ K0, model.tail ^ K1)
        ^ mix(
            model.words[1] ^ provider.words[0] ^ K2,
            lengths ^ (model.words[2] ^ provider.tail).rotate_left(17) ^ K3,
        )
}

/// A free bucket. A used one holds the high half of the key's hash above its id.
const EMPTY: u64 = u64::MAX;

/// One distinct pair of a batch.
struct Key<'a> {
    hash: u64,
    provider_sample: ProviderSample<'a>,
    model_sample: ModelSample<'a>,
    provider: &'a str,
    model: &'a str,
}

/// Open-addressing (linear probing) map from a (provider, model) pair to its dense id.
struct KeyTable<'a> {
    /// (hash high half, key id) per bucket, [`EMPTY`] when free; a power of two long, at
    /// most a quarter full so most lookups read one bucket.
    buckets: Vec<u64>,
    keys: Vec<Key<'a>>,
    /// Bucket where the last failed [`Self::find`] stopped, and its hash.
    vacant: (usize, u64),
}

impl<'a> KeyTable<'a> {
    fn new() -> Self {
        Self {
            buckets: vec![EMPTY; 256],
            keys: Vec::new(),
            vacant: (0, 0),
        }
    }

    /// The id of (provider, model), if seen before in the batch.
    #[inline(always)]
    fn find(&mut self, provider: &ProviderSample<'_>, model: &ModelSample<'_>) -> Option<u32> {
        let hash = pair_hash(provider, model);
        let mask = self.buckets.len() - 1;
        let mut at = hash as usize & mask;
        loop {
            let bucket = self.buckets[at];
            if bucket == EMPTY {
                self.vacant = (at, hash);
                return None;
            }
            if bucket >> 32 == hash >> 32 {
                let id = bucket as u32;
                let key = &self.keys[id as usize];
                if key.model_sample.same(model) && key.provider_sample.same(provider) {
                    return Some(id);
                }
            }
            at = (at + 1) & mask;
        }
    }

    /// The batch's keys, with `rows` the key id of each row.
    fn into_keys(self, rows: Vec<u32>) -> BatchKeys<'a> {
        BatchKeys {
            keys: self
                .keys
                .into_iter()
                .map(|k| (k.provider, k.model))
                .collect(),
            rows,
        }
    }

    /// Adds the pair a [`Self::find`] just missed.
    #[cold]
    fn insert(
        &mut self,
        provider_sample: ProviderSample<'a>,
        model_sample: ModelSample<'a>,
        provider: &'a str,
        model: &'a str,
    ) -> u32 {
        let (at, hash) = self.vacant;
        let id = self.keys.len() as u32;
        self.keys.push(Key {
            hash,
            provider_sample,
            model_sample,
            provider,
            model,
        });
        self.buckets[at] = bucket(hash, id);
        if self.keys.len() * 4 > self.buckets.len() {
            let size = self.buckets.len() * 2;
            let mask = size - 1;
            let mut buckets = vec![EMPTY; size];
            for (id, key) in self.keys.iter().enumerate() {
                let mut at = key.hash as usize & mask;
                while buckets[at] != EMPTY {
                    at = (at + 1) & mask;
                }
                buckets[at] = bucket(key.hash, id as u32);
            }
            self.buckets = buckets;
        }
        id
    }
}

/// The bucket value of key `id` with `hash`.
fn bucket(hash: u64, id: u32) -> u64 {
    (hash >> 32 << 32) | u64::from(id)
}

/// Eight bytes of `bytes` from `at`, little endian, zero padded past the end.
#[inline(always)]
fn load(bytes: &[u8], at: usize) -> u64 {
    match bytes.get(at..at + 8) {
        Some(word) => {
            let mut buf = [0u8; 8];
            buf.copy_from_slice(word);
            u64::from_le_bytes(buf)
        }
        None => {
            let rest = bytes.get(at..).unwrap_or_default();
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            u64::from_le_bytes(buf)
        }
    }
}

/// Folded 64x64 -> 128-bit multiply.
#[inline(always)]
fn mix(a: u64, b: u64) -> u64 {
    let product = u128::from(a) * u128::from(b);
    (product as u64) ^ ((product >> 64) as u64)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, StringViewBuilder};
    use datafusion::arrow::buffer::Buffer;

    use super::*;

    /// A view array whose long values sit twice in one data block, rows pointing at either
    /// copy: equal views (as Parquet gives the rows of a dictionary page) and equal strings
    /// under different views (as a plain page gives) in the same array.
    fn shared_views(values: &[Option<&str>]) -> ArrayRef {
        let mut block = Vec::new();
        let mut at = HashMap::new();
        for value in values.iter().flatten() {
            at.entry(*value).or_insert_with(|| {
                let start = block.len();
                block.extend_from_slice(value.as_bytes());
                block.extend_from_slice(value.as_bytes());
                start
            });
        }
        let mut builder = StringViewBuilder::new();
        let id = builder.append_block(Buffer::from_vec(block));
        for (i, value) in values.iter().enumerate() {
            match value {
                None => builder.append_null(),
                Some(value) => {
                    let start = at[value] + (i / 3 % 2) * value.len();
                    builder
                        .try_append_view(id, start as u32, value.len() as u32)
                        .expect("view in block");
                }
            }
        }
        Arc::new(builder.finish())
    }

    /// Key ids and the distinct count, the same whether the text is `Utf8`, `Utf8View`, a
    /// slice of a `Utf8View` array (whose views sit past the buffer's start) or views sharing
    /// their bytes ([`shared_views`]).
    fn keys_of(providers: Vec<Option<&str>>, models: Vec<Option<&str>>) -> (Vec<u32>, usize) {
        let n = providers.len();
        let intern = |p: &ArrayRef, m: &ArrayRef| {
            let (p, m) = (Text::new(p).expect("text"), Text::new(m).expect("text"));
            let keys = BatchKeys::intern(&p, &m, n);
            let pairs: Vec<(String, String)> = keys
                .keys
                .iter()
                .map(|(p, m)| (p.to_string(), m.to_string()))
                .collect();
            (keys.rows, pairs)
        };
        let utf8 = |v: &[Option<&str>]| -> ArrayRef { Arc::new(StringArray::from(v.to_vec())) };
        let view = |v: &[Option<&str>]| -> ArrayRef { Arc::new(StringViewArray::from(v.to_vec())) };
        let sliced = |v: &[Option<&str>]| -> ArrayRef {
            let mut padded = vec![Some("a leading value longer than twelve bytes")];
            padded.extend_from_slice(v);
            Arc::new(StringViewArray::from(padded).slice(1, v.len()))
        };
        let expected = intern(&utf8(&providers), &utf8(&models));
        for make in [view, sliced, shared_views] {
            let got = intern(&make(&providers), &make(&models));
            assert_eq!(got, expected, "views give other keys");
        }
        (expected.0, expected.1.len())
    }

    #[test]
    fn equal_pairs_share_an_id_and_different_pairs_do_not() {
        let (rows, distinct) = keys_of(
            vec![
                Some("openai"),
                Some("azure_openai"),
                Some("openai"),
                None,
                Some("anthropic"),
                Some("anthropic"),
                Some("openai"),
            ],
            vec![
                Some("gpt-4o-2024-08-06"),
                Some("gpt-4o-2024-08-06"),
                Some("gpt-4o-2024-08-06"),
                Some("gpt-4o"),
                Some("claude-3-5-sonnet-20241022"),
                // Same length, first and last eight bytes as the previous model.
                Some("claude-3-7-sonnet-20241022"),
                None,
            ],
        );
        assert_eq!(distinct, 4);
        assert_eq!(rows, vec![0, 1, 0, NO_KEY, 2, 3, NO_KEY]);
    }

    #[test]
    fn many_distinct_pairs_grow_the_table() {
        let models: Vec<String> = (0..5000).map(|i| format!("model-{i}")).collect();
        let mut all: Vec<Option<&str>> = models.iter().map(|m| Some(m.as_str())).collect();
        all.extend(models.iter().rev().map(|m| Some(m.as_str())));
        let providers = vec![Some("acme"); all.len()];
        let (rows, distinct) = keys_of(providers, all);
        assert_eq!(distinct, 5000);
        for i in 0..5000 {
            assert_eq!(rows[i], i as u32);
            assert_eq!(rows[9999 - i], i as u32);
        }
    }

    #[test]
    fn one_model_under_more_providers_than_cache_slots_keeps_the_pairs_apart() {
        // More pairs than view-cache slots, so pairs sharing the model's view share slots.
        let providers: Vec<String> = (0..2 * VIEW_SLOTS).map(|i| format!("p{i}")).collect();
        let mut all: Vec<Option<&str>> = providers.iter().map(|p| Some(p.as_str())).collect();
        all.extend(all.clone());
        let models = vec![Some("claude-3-5-sonnet-20241022"); all.len()];
        let (rows, distinct) = keys_of(all, models);
        assert_eq!(distinct, 2 * VIEW_SLOTS);
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(*row as usize, i % (2 * VIEW_SLOTS), "row {i}");
        }
    }

    #[test]
    fn long_ids_differing_in_the_middle_keep_their_ids_on_every_repeat() {
        // 44 bytes, past what the sampled words hold; equal but for one byte in the middle.
        let a = "us.anthropic.claude-3-5-sonnet-20240620-v1:0";
        let b = "us.anthropic.claude-3-7-sonnet-20240620-v1:0";
        let long_provider = "a-provider-name-longer-than-16";
        let mut providers = Vec::new();
        let mut models = Vec::new();
        for i in 0..300 {
            providers.push(Some(if i % 3 == 2 {
                long_provider
            } else {
                "aws_bedrock"
            }));
            models.push(Some(if i % 2 == 0 { a } else { b }));
        }
        let (rows, distinct) = keys_of(providers, models);
        assert_eq!(distinct, 4);
        let first: Vec<u32> = rows[..6].to_vec();
        for (i, row) in rows.iter().enumerate() {
            assert_eq!(*row, first[i % 6], "row {i}");
        }
    }

    #[test]
    fn short_and_empty_ids_are_distinct() {
        let (rows, distinct) = keys_of(
            vec![Some(""), Some("a"), Some(""), Some("a"), Some("")],
            vec![Some(""), Some(""), Some("a"), Some("a"), Some("")],
        );
        assert_eq!(distinct, 4);
        assert_eq!(rows, vec![0, 1, 2, 3, 0]);
    }

    #[test]
    fn map_short_parses_each_row_like_parse() {
        let values: Vec<Option<String>> = (0..2000)
            .map(|i| match i % 7 {
                0 => None,
                1 => Some("batch".to_string()),
                2 => Some(format!("v{}", i % 300)),
                3 => Some(format!("a value longer than sixteen bytes {}", i % 5)),
                4 => Some(String::new()),
                5 => Some("priority".to_string()),
                _ => Some(format!("{}", i % 50)),
            })
            .collect();
        let values: Vec<Option<&str>> = values.iter().map(Option::as_deref).collect();
        // A different number per distinct text, so a value mapped to another's result shows.
        let state = std::hash::RandomState::new();
        let id = |s: &str| std::hash::BuildHasher::hash_one(&state, s);
        let arrays: [ArrayRef; 3] = [
            Arc::new(StringArray::from(values.clone())),
            Arc::new(StringViewArray::from(values.clone())),
            shared_views(&values),
        ];
        for array in &arrays {
            let text = Text::new(array).expect("text");
            let got = map_short(&text, values.len(), id);
            for (value, got) in values.iter().zip(got) {
                assert_eq!(got, value.map(id), "{value:?} in {}", array.data_type());
            }
        }
    }
}
