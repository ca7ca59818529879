//! `cheaper_alternative(provider, model)`: the cheapest model one tier down from the same
//! provider.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::StringBuilder;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use rustc_hash::FxHashMap;

use super::{TIERS, tier_of};
use crate::PriceBook;
use crate::args::{FINOPS_SECTION, Text, check_arity, coerce_text, output, to_arrays};
use crate::cost::now_micros;
use crate::pricing::PriceBookHandle;

const NAME: &str = "cheaper_alternative";
const SYNTAX: &str = "cheaper_alternative(provider, model)";

/// Ids with these parts are not current general text models a request could move to
/// (embeddings, media, fine-tunes, retired completion models).
const NOT_ALTERNATIVES: &[&str] = &[
    "embed",
    "audio",
    "realtime",
    "tts",
    "transcribe",
    "image",
    "search",
    "moderation",
    "ft:",
    "vision",
    "instruct",
    "whisper",
    "dall-e",
    "guard",
    "computer-use",
    "deep-research",
    "babbage",
    "davinci",
    "curie",
    "ada-",
    "gpt-3.5",
    "gpt-35",
    "text-",
    "code-",
    "preview",
    "chatgpt",
    ":free",
    "rerank",
];

/// Providers that resell several vendors' models: the alternative keeps the vendor family
/// (a Claude model on Bedrock gets a Claude model, not another vendor's).
const MARKETPLACES: &[&str] = &[
    "aws_bedrock",
    "gcp_vertex",
    "azure_openai",
    "openrouter",
    "together_ai",
    "fireworks_ai",
    "groq",
];

/// Vendor family of a catalog id: the vendor prefix of `vendor.model` / `vendor/model` ids
/// (after a Bedrock region prefix), else the leading letters (`claude`, `gemini`, `gpt`).
fn family(id: &str) -> &str {
    let id = [
        "global.", "us.", "eu.", "apac.", "jp.", "au.", "ca.", "us-gov.",
    ]
    .iter()
    .find_map(|r| id.strip_prefix(r))
    .unwrap_or(id);
    if let Some(end) = id.find(['.', '/']) {
        return &id[..end];
    }
    let end = id
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(id.len());
    &id[..end]
}

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        FINOPS_SECTION,
        "The cheapest model (lowest current input + output price) of the next lower tier \
         (frontier → mid, mid → small) from the same provider, among current text models with \
         exact catalog ids (embedding, audio, image, realtime, search, preview, fine-tuned and \
         retired completion ids excluded; ties broken by id). On marketplaces (Bedrock, \
         Vertex, Azure, OpenRouter, Together, Fireworks, Groq) the vendor family is kept. \
         NULL for small models and unpriced ones.",
        SYNTAX,
    )
    .with_sql_example("SELECT cheaper_alternative('anthropic', 'claude-opus-4-1');")
    .with_argument("provider", "Canonical provider.")
    .with_argument("model", "Model id as reported.")
    .with_related_udf("model_tier")
    .build()
});

/// `cheaper_alternative`: a lower-tier model of the same provider.
#[derive(Debug)]
pub struct CheaperAlternativeFunc {
    signature: Signature,
    book: PriceBookHandle,
}

impl CheaperAlternativeFunc {
    /// A `cheaper_alternative` reading prices from `book`.
    pub fn new(book: PriceBookHandle) -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Stable),
            book,
        }
    }
}

impl PartialEq for CheaperAlternativeFunc {
    fn eq(&self, other: &Self) -> bool {
        self.book.same_slot(&other.book)
    }
}
impl Eq for CheaperAlternativeFunc {}
impl std::hash::Hash for CheaperAlternativeFunc {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NAME.hash(state);
        self.book.slot_id().hash(state);
    }
}

/// The alternative for one (provider, model) at `now`.
fn alternative(book: &PriceBook, provider: &str, model: &str, now: i64) -> Option<String> {
    let resolved = book.resolve(provider, model)?;
    let row = book.row(book.row_index_at(resolved.entry, now)?);
    let position = TIERS.iter().position(|t| Some(*t) == tier_of(row))?;
    let target = *TIERS.get(position + 1)?;
    let provider = &book.entry(resolved.entry).provider;
    let own_family = family(&resolved.canonical).to_ascii_lowercase();
    let keep_family = MARKETPLACES.contains(&provider.as_str());
    let mut best: Option<(i128, &str)> = None;
    for id in book.exact_entries(provider) {
        let entry = book.entry(id);
        let name = entry.model.to_ascii_lowercase();
        if NOT_ALTERNATIVES.iter().any(|part| name.contains(part))
            || (keep_family && family(&name) != own_family)
        {
            continue;
        }
        let Some(candidate) = book.row_index_at(id, now).map(|r| book.row(r)) else {
            continue;
        };
        let (Some(input), Some(output)) = (candidate.input, candidate.output) else {
            continue;
        };
        if output <= 0 || tier_of(candidate) != Some(target) {
            continue;
        }
        let price = input + output;
        let better = match best {
            None => true,
            Some((p, m)) => (price, entry.model.as_str()) < (p, m),
        };
        if better {
            best = Some((price, entry.model.as_str()));
        }
    }
    best.map(|(_, m)| m.to_string())
}

impl ScalarUDFImpl for CheaperAlternativeFunc {
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
        check_arity(NAME, SYNTAX, arg_types.len(), 2, 2)?;
        Ok(vec![
            coerce_text(NAME, "provider", &arg_types[0])?,
            coerce_text(NAME, "model", &arg_types[1])?,
        ])
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let (arrays, all_scalar) = to_arrays(&args.args)?;
        let book = self.book.snapshot();
        let (provider, model) = (Text::new(&arrays[0])?, Text::new(&arrays[1])?);
        let now = now_micros();
        // The scan over a provider's models runs once per distinct id in the batch.
        let mut memo: FxHashMap<(&str, &str), Option<String>> = FxHashMap::default();
        let mut builder = StringBuilder::new();
        for i in 0..arrays[0].len() {
            match (provider.get(i), model.get(i)) {
                (Some(p), Some(m)) => {
                    let alt = memo
                        .entry((p, m))
                        .or_insert_with(|| alternative(&book, p, m, now));
                    builder.append_option(alt.as_deref());
                }
                _ => builder.append_null(),
            }
        }
        output(Arc::new(builder.finish()), all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}
