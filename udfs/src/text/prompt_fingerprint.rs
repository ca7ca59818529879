//! `prompt_fingerprint(text)`: stable hash of the normalised prompt, for finding repeated
//! prompts across requests.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::StringBuilder;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use sha2::{Digest, Sha256};

use super::normalize_prompt;
use crate::args::{FINOPS_SECTION, Text, check_arity, coerce_text, output, to_arrays};

const NAME: &str = "prompt_fingerprint";
const SYNTAX: &str = "prompt_fingerprint(text)";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        FINOPS_SECTION,
        "Fingerprint of a prompt: lowercased, UUIDs masked, digit runs masked, whitespace \
         collapsed and trimmed, then SHA-256; returns the first 128 bits as 32 lowercase hex \
         characters. Stable across versions and machines, so gateways can compute it too.",
        SYNTAX,
    )
    .with_sql_example(
        "SELECT prompt_fingerprint('Order 123') = prompt_fingerprint('  order   456 ');\n-- true",
    )
    .with_argument("text", "The prompt text.")
    .with_related_udf("simhash")
    .build()
});

/// Fingerprint of `text` (see the function docs).
pub fn prompt_fingerprint(text: &str) -> String {
    let digest = Sha256::digest(normalize_prompt(text).as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// `prompt_fingerprint`: hash of the normalised prompt.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct PromptFingerprintFunc {
    signature: Signature,
}

impl Default for PromptFingerprintFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl PromptFingerprintFunc {
    /// A `prompt_fingerprint`.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for PromptFingerprintFunc {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        check_arity(NAME, SYNTAX, arg_types.len(), 1, 1)?;
        Ok(vec![coerce_text(NAME, "text", &arg_types[0])?])
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = to_arrays(&args.args)?;
        let text = Text::new(&arrays[0])?;
        let mut builder = StringBuilder::new();
        for i in 0..arrays[0].len() {
            builder.append_option(text.get(i).map(prompt_fingerprint));
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
    fn equal_after_normalisation_means_equal_fingerprint() {
        let a = prompt_fingerprint(
            "Summarise ticket 4411 for user 0b5c7d1e-1111-2222-3333-444455556666",
        );
        let b = prompt_fingerprint(
            "summarise  ticket 98\nfor user 9f9f9f9f-aaaa-bbbb-cccc-ddddeeeeffff",
        );
        assert_eq!(a, b);
        assert_eq!(a.len(), 32);
        assert_ne!(a, prompt_fingerprint("summarise invoice 1"));
    }
}
