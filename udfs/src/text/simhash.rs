//! `simhash(text)`: 64-bit SimHash of the normalised prompt's words, for near-duplicate
//! detection with `hamming_distance`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::Int64Builder;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::normalize_prompt;
use crate::args::{FINOPS_SECTION, Text, check_arity, coerce_text, output, to_arrays};

const NAME: &str = "simhash";
const SYNTAX: &str = "simhash(text)";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        FINOPS_SECTION,
        "64-bit SimHash (as BIGINT) of a prompt: normalised like prompt_fingerprint, split \
         into words, each word and each pair of adjacent words hashed with FNV-1a 64 and \
         weighted 1. Similar prompts differ in few bits: compare with hamming_distance \
         (e.g. <= 3 of 64 bits for near-duplicates). The empty text hashes to 0.",
        SYNTAX,
    )
    .with_sql_example("SELECT hamming_distance(simhash('a b c d'), simhash('a b c e'));")
    .with_argument("text", "The prompt text.")
    .with_related_udf("hamming_distance")
    .build()
});

fn fnv1a64(bytes: impl Iterator<Item = u8>) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// SimHash of `text` (see the function docs), bit-cast to `i64`.
pub fn simhash(text: &str) -> i64 {
    let normalized = normalize_prompt(text);
    let words: Vec<&str> = normalized.split(' ').filter(|w| !w.is_empty()).collect();
    let mut weights = [0i32; 64];
    let mut add = |hash: u64| {
        for (bit, weight) in weights.iter_mut().enumerate() {
            *weight += if hash >> bit & 1 == 1 { 1 } else { -1 };
        }
    };
    for word in &words {
        add(fnv1a64(word.bytes()));
    }
    // Word pairs keep some order information, so reordered prompts are not identical.
    for pair in words.windows(2) {
        add(fnv1a64(
            pair[0]
                .bytes()
                .chain(std::iter::once(b' '))
                .chain(pair[1].bytes()),
        ));
    }
    if words.is_empty() {
        return 0;
    }
    let bits = weights.iter().enumerate().fold(
        0u64,
        |acc, (bit, w)| if *w > 0 { acc | 1 << bit } else { acc },
    );
    bits as i64
}

/// `simhash`: near-duplicate signature of a text.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SimhashFunc {
    signature: Signature,
}

impl Default for SimhashFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl SimhashFunc {
    /// A `simhash`.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for SimhashFunc {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(NAME, SYNTAX, arg_types.len(), 1, 1)?;
        Ok(vec![coerce_text(NAME, "text", &arg_types[0])?])
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = to_arrays(&args.args)?;
        let text = Text::new(&arrays[0])?;
        let mut builder = Int64Builder::with_capacity(arrays[0].len());
        for i in 0..arrays[0].len() {
            builder.append_option(text.get(i).map(simhash));
        }
        output(Arc::new(builder.finish()), all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_texts_are_close_and_different_texts_far() {
        let base = "please summarise the following support ticket about a late delivery";
        let near = "please summarise the following support ticket about a late refund";
        let far = "write a haiku about autumn leaves falling on a quiet pond";
        let d = |a: &str, b: &str| (simhash(a) ^ simhash(b)).count_ones();
        assert_eq!(
            simhash(base),
            simhash("Please  SUMMARISE the following support ticket about a late delivery")
        );
        assert!(
            d(base, near) < d(base, far),
            "{} vs {}",
            d(base, near),
            d(base, far)
        );
        assert_eq!(simhash(""), 0);
    }
}
