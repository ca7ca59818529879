//! SQL functions of budgets: `tag_value(tags, key)` (one key of the `tags` JSON object, what a
//! `tag` budget matches on) and `finops.reserve(scope, scope_value, amount)` (a gateway's
//! reservation against the hard caps).
//!
//! Owns argument handling; the cap arithmetic is in `cap.rs`.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Decimal128Type};
use datafusion::common::{exec_err, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility, create_udf,
};

use super::cap::Caps;
use crate::schema::money_type;

/// `tag_value(tags text, key text) -> text`: the value of `key` in the JSON object `tags`
/// (strings as they are, other values as JSON text); NULL if absent or not an object.
pub fn tag_value_udf() -> ScalarUDF {
    create_udf(
        "tag_value",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(|args: &[ColumnarValue]| {
            let arrays = ColumnarValue::values_to_arrays(args)?;
            let (Some(tags), Some(keys)) = (
                arrays[0].as_any().downcast_ref::<StringArray>(),
                arrays[1].as_any().downcast_ref::<StringArray>(),
            ) else {
                return exec_err!("tag_value expects (text, text)");
            };
            let out: StringArray = (0..tags.len())
                .map(|i| {
                    if tags.is_null(i) || keys.is_null(i) {
                        return None;
                    }
                    match serde_json::from_str::<serde_json::Value>(tags.value(i)).ok()? {
                        serde_json::Value::Object(map) => match map.get(keys.value(i))? {
                            serde_json::Value::String(s) => Some(s.clone()),
                            serde_json::Value::Null => None,
                            other => Some(other.to_string()),
                        },
                        _ => None,
                    }
                })
                .collect();
            Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
        }),
    )
}

static RESERVE_DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        finops_udfs::FINOPS_SECTION,
        "Reserve `amount` USD for a request of the scope: true, and the amount booked, only \
         if it fits every capped budget of that scope and every capped org budget (a scope \
         without a cap is always granted); false, and nothing booked, otherwise. NULL for a \
         NULL scope or amount.",
        "finops.reserve(scope, scope_value, amount)",
    )
    .with_sql_example("SELECT finops.reserve('team', 'search', 0.05);\n-- true")
    .with_argument(
        "scope",
        "Budget scope: `team`, `app`, `feature`, `user`, `provider`, ...",
    )
    .with_argument("scope_value", "The scope's value, such as the team's name.")
    .with_argument("amount", "USD to reserve (numeric).")
    .build()
});

/// `finops.reserve(scope, scope_value, amount) -> boolean`. The Postgres-compatible parser
/// drops schema qualifiers from function names, so it resolves as `reserve`.
#[derive(Debug)]
pub struct ReserveFunc {
    caps: Arc<Caps>,
    signature: Signature,
    aliases: Vec<String>,
}

impl PartialEq for ReserveFunc {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.caps, &other.caps)
    }
}

impl Eq for ReserveFunc {}

impl std::hash::Hash for ReserveFunc {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "finops.reserve".hash(state);
    }
}

impl ReserveFunc {
    /// The function over `caps`, as a UDF.
    pub fn udf(caps: Arc<Caps>) -> ScalarUDF {
        ScalarUDF::from(Self {
            caps,
            // Volatile: each call books money, so it must never be folded or cached.
            signature: Signature::any(3, Volatility::Volatile),
            aliases: vec!["finops.reserve".to_string()],
        })
    }
}

impl ScalarUDFImpl for ReserveFunc {
    fn name(&self) -> &str {
        "reserve"
    }

    fn aliases(&self) -> &[String] {
        &self.aliases
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&RESERVE_DOCUMENTATION)
    }

    fn return_type(&self, args: &[DataType]) -> datafusion::error::Result<DataType> {
        if args.len() != 3 {
            return plan_err!("finops.reserve(scope, scope_value, amount) takes 3 arguments");
        }
        Ok(DataType::Boolean)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::error::Result<ColumnarValue> {
        let rows = args.number_rows;
        let arrays: Vec<ArrayRef> = args
            .args
            .iter()
            .map(|a| a.to_array(rows))
            .collect::<datafusion::error::Result<_>>()?;
        let scopes = cast(&arrays[0], &DataType::Utf8)?;
        let values = cast(&arrays[1], &DataType::Utf8)?;
        let amounts = cast(&arrays[2], &money_type())?;
        let (scopes, values) = (scopes.as_string::<i32>(), values.as_string::<i32>());
        let amounts = amounts.as_primitive::<Decimal128Type>();
        let now = chrono::Utc::now();
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            if scopes.is_null(i) || amounts.is_null(i) {
                out.push(None);
                continue;
            }
            let value = values.is_valid(i).then(|| values.value(i));
            out.push(Some(self.caps.reserve(
                scopes.value(i),
                value,
                amounts.value(i),
                now,
            )?));
        }
        Ok(ColumnarValue::Array(Arc::new(BooleanArray::from(out))))
    }
}
