//! Text functions: `count_tokens`, `prompt_fingerprint`, `simhash`, `hamming_distance`,
//! and the prompt normalisation the last three share.

mod count_tokens;
mod hamming_distance;
mod prompt_fingerprint;
mod simhash;

pub use count_tokens::{CHARS_PER_TOKEN_ESTIMATE, CountTokensFunc, count_tokens};
pub use hamming_distance::HammingDistanceFunc;
pub use prompt_fingerprint::{PromptFingerprintFunc, prompt_fingerprint};
pub use simhash::{SimhashFunc, simhash};

use std::sync::LazyLock;

use regex::Regex;

static UUID: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").ok()
});

/// Normalises a prompt so that requests differing only in volatile details compare equal:
/// lowercase, UUIDs → `<uuid>`, each run of digits → `#`, whitespace runs → one space,
/// trimmed.
pub fn normalize_prompt(text: &str) -> String {
    let lower = text.to_lowercase();
    let masked = match UUID.as_ref() {
        Some(uuid) => uuid.replace_all(&lower, "<uuid>").into_owned(),
        None => lower,
    };
    let mut out = String::with_capacity(masked.len());
    let mut pending_space = false;
    let mut in_digits = false;
    for ch in masked.chars() {
        if ch.is_whitespace() {
            pending_space = !out.is_empty();
            in_digits = false;
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        if ch.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
            continue;
        }
        in_digits = false;
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_masks_volatile_parts() {
        let cases = [
            ("  Hello\n\tWORLD  ", "hello world"),
            ("order 12345 and 7", "order # and #"),
            ("id 123E4567-e89b-12d3-a456-426614174000 ok", "id <uuid> ok"),
            ("", ""),
        ];
        for (text, expected) in cases {
            assert_eq!(normalize_prompt(text), expected, "{text:?}");
        }
    }
}
