//! `count_tokens(text [, model])`: BPE token count for OpenAI encodings, a documented
//! estimate for other models.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::Int64Builder;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use tiktoken_rs::CoreBPE;
use tiktoken_rs::tokenizer::{Tokenizer, get_tokenizer};

use crate::args::{FINOPS_SECTION, Text, check_arity, coerce_text, output, to_arrays};

const NAME: &str = "count_tokens";
const SYNTAX: &str = "count_tokens(text [, model])";

/// Characters per token assumed for models without a public tokenizer (Claude, Gemini,
/// Llama, ...): the common rule of thumb for English text.
pub const CHARS_PER_TOKEN_ESTIMATE: i64 = 4;

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        FINOPS_SECTION,
        "Number of tokens in `text`. Exact BPE (tiktoken encodings bundled in the binary, no \
         network) for OpenAI models, o200k_base when no model is given; for other models an \
         estimate of ceil(characters / 4). Special-token text is counted as plain text.",
        SYNTAX,
    )
    .with_sql_example("SELECT count_tokens('hello world', 'gpt-4o');\n-- 2")
    .with_argument("text", "The text to count.")
    .with_argument(
        "model",
        "Model id choosing the encoding (default: o200k_base).",
    )
    .build()
});

fn bpe(tokenizer: Tokenizer) -> Option<&'static CoreBPE> {
    tiktoken_rs::bpe_for_tokenizer(tokenizer).ok()
}

/// Token count of `text` for `model` (see the function docs for exact vs estimated).
pub fn count_tokens(text: &str, model: Option<&str>) -> i64 {
    let tokenizer = match model {
        None => Some(Tokenizer::O200kBase),
        Some(model) => get_tokenizer(model.trim()),
    };
    match tokenizer.and_then(bpe) {
        Some(bpe) => bpe.encode_ordinary(text).len() as i64,
        None => {
            let chars = text.chars().count() as i64;
            (chars + CHARS_PER_TOKEN_ESTIMATE - 1) / CHARS_PER_TOKEN_ESTIMATE
        }
    }
}

/// `count_tokens`: tokens in a text.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CountTokensFunc {
    signature: Signature,
}

impl Default for CountTokensFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl CountTokensFunc {
    /// A `count_tokens`.
    pub fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for CountTokensFunc {
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
        check_arity(NAME, SYNTAX, arg_types.len(), 1, 2)?;
        arg_types
            .iter()
            .map(|dt| coerce_text(NAME, "text", dt))
            .collect()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = to_arrays(&args.args)?;
        let text = Text::new(&arrays[0])?;
        let model = arrays.get(1).map(Text::new).transpose()?;
        let mut builder = Int64Builder::with_capacity(arrays[0].len());
        for i in 0..arrays[0].len() {
            let model = match &model {
                Some(m) => match m.get(i) {
                    Some(m) => Some(m),
                    None => {
                        builder.append_null();
                        continue;
                    }
                },
                None => None,
            };
            builder.append_option(text.get(i).map(|t| count_tokens(t, model)));
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
    fn openai_models_count_exactly_others_estimate() {
        let cases: [(&str, Option<&str>, i64); 5] = [
            ("hello world", Some("gpt-4o"), 2),
            ("hello world", Some("gpt-3.5-turbo"), 2),
            ("hello world", None, 2),
            ("hello world", Some("claude-3-5-sonnet"), 3),
            ("", Some("claude-3-5-sonnet"), 0),
        ];
        for (text, model, expected) in cases {
            assert_eq!(count_tokens(text, model), expected, "{text:?} {model:?}");
        }
    }
}
