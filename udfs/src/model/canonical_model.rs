//! `canonical_model(provider, model)`: the catalog id a reported model id resolves to.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::StringBuilder;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::args::{FINOPS_SECTION, Text, check_arity, coerce_text, output, to_arrays};
use crate::pricing::PriceBookHandle;

const NAME: &str = "canonical_model";
const SYNTAX: &str = "canonical_model(provider, model)";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        FINOPS_SECTION,
        "Catalog id of a reported model id: strips Bedrock region prefixes (`us.`, `eu.`, \
         `apac.`, `global.`), vendor prefixes and `-v1:0` suffixes, reads Bedrock ARNs \
         (application inference profiles stay unpriced unless a price rule names the ARN), \
         Vertex `model@version` and `publishers/*/models/*` names, Azure meter names \
         (`gpt-4o 0806 Inp glbl Tokens`), gateway prefixes (`openai/...`), and date or \
         `-v2` suffixes, trying the most specific spelling first. For a regex rule the \
         normalised id is returned. NULL when nothing in the price book matches.",
        SYNTAX,
    )
    .with_sql_example(
        "SELECT canonical_model('aws_bedrock', 'us.anthropic.claude-3-5-sonnet-20240620-v1:0');",
    )
    .with_argument("provider", "Canonical provider.")
    .with_argument("model", "Model id as reported.")
    .with_related_udf("token_cost")
    .build()
});

/// `canonical_model`: reported id → catalog id.
#[derive(Debug)]
pub struct CanonicalModelFunc {
    signature: Signature,
    book: PriceBookHandle,
}

impl CanonicalModelFunc {
    /// A `canonical_model` resolving against `book`.
    pub fn new(book: PriceBookHandle) -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Stable),
            book,
        }
    }
}

impl PartialEq for CanonicalModelFunc {
    fn eq(&self, other: &Self) -> bool {
        self.book.same_slot(&other.book)
    }
}
impl Eq for CanonicalModelFunc {}
impl std::hash::Hash for CanonicalModelFunc {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NAME.hash(state);
        self.book.slot_id().hash(state);
    }
}

impl ScalarUDFImpl for CanonicalModelFunc {
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
        let mut builder = StringBuilder::new();
        for i in 0..arrays[0].len() {
            let resolved = match (provider.get(i), model.get(i)) {
                (Some(p), Some(m)) => book.resolve(p, m),
                _ => None,
            };
            builder.append_option(resolved.as_ref().map(|r| &*r.canonical));
        }
        output(Arc::new(builder.finish()), all_scalar)
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}
