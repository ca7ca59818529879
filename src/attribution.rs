//! Attribution rules: `finops.attribution_rules` maps fields the provider reports (project or
//! workspace, API key, user, environment, model, source, a tag) to the team, app and feature that
//! own the usage, and the `attribute_usage` function applies them to each row of `finops.usage`.
//!
//! Owns the rules' columns, their validation and the in-memory index the function reads, swapped
//! atomically after every change of the table. It must not read or write storage: the engine
//! loads the rows and hands them over.
//!
//! Semantics: the rules are tried in order of `priority` (lowest first, NULL last), then
//! `rule_id`; the first rule whose `provider` (NULL = any) and `field = value` match the row
//! wins. It fills the row's team, app and feature where the row has none: a value the row carries
//! itself (a gateway that knows its team) is never overwritten.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringArray, StringViewArray, StringViewBuilder,
    StructArray, new_null_array,
};
use datafusion::arrow::compute::{self, cast, kernels::cmp, kernels::zip::zip};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::common::{Result as DfResult, ScalarValue, exec_err};
use datafusion::functions::expr_fn::{named_struct, nullif};
use datafusion::logical_expr::expr::{Cast, ScalarFunction};
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility, lit,
};

use crate::error::{Error, Result, arrow_error};

/// `(schema, table)` of the rules.
pub const ATTRIBUTION_RULES: (&str, &str) = ("finops", "attribution_rules");

/// Columns of `finops.attribution_rules`.
pub fn rules_schema() -> SchemaRef {
    Arc::clone(&RULES_SCHEMA)
}

static RULES_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let text = |name: &str, nullable: bool| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        text("rule_id", false),
        Field::new("priority", DataType::Int64, true),
        text("provider", true),
        text("field", false),
        text("value", false),
        text("team", true),
        text("app", true),
        text("feature", true),
    ]))
});

/// Columns `attribute_usage` takes, in order (all in the canonical usage shape).
pub const ARGUMENTS: [&str; 11] = [
    "provider",
    "team",
    "app",
    "feature",
    "project",
    "api_key_id",
    "user_id",
    "environment",
    "model",
    "source",
    "tags",
];

/// The row fields a rule can match, in the order `attribute_usage` takes them after
/// `provider, team, app, feature`.
const MATCH_FIELDS: &[&str] = ARGUMENTS.split_at(4).1;

/// What a rule looks at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Target {
    /// One of [`MATCH_FIELDS`] but `tags`, by index.
    Column(usize),
    /// The value of one key of the `tags` JSON object.
    Tag(String),
}

impl Target {
    fn parse(field: &str) -> Option<Target> {
        let field = field.trim();
        if let Some(key) = field.strip_prefix("tag:") {
            return (!key.is_empty()).then(|| Target::Tag(key.to_string()));
        }
        let field = match field {
            "workspace" | "workspace_id" | "project_id" | "account" | "subscription" => "project",
            "api_key" => "api_key_id",
            "user" => "user_id",
            other => other,
        };
        MATCH_FIELDS[..6]
            .iter()
            .position(|f| *f == field)
            .map(Target::Column)
    }
}

/// One validated rule.
#[derive(Debug, Clone)]
struct Rule {
    rule_id: String,
    priority: Option<i64>,
    provider: Option<String>,
    target: Target,
    value: String,
    team: Option<String>,
    app: Option<String>,
    feature: Option<String>,
}

/// What of a row a set of rules looks at: its provider, and which of [`MATCH_FIELDS`].
#[derive(Debug, Default)]
struct Reads {
    provider: bool,
    fields: [bool; 7],
}

/// The rules, indexed by what they match.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// (target, value) → rule positions, in priority order.
    index: HashMap<(Target, String), Vec<usize>>,
    tag_keys: Vec<String>,
}

impl RuleSet {
    /// Validate and index the rows of `batches` (the table's schema). A rule with an unknown
    /// field, an empty value, nothing to set, or a duplicate `rule_id` is rejected
    /// (SQLSTATE 23514), naming the rule.
    pub fn from_batches(batches: &[RecordBatch]) -> Result<RuleSet> {
        let mut rules = Vec::new();
        for batch in batches {
            let text = |name: &str| -> Result<StringArray> {
                let column = batch.column_by_name(name).ok_or_else(|| {
                    Error::Internal(format!("attribution rules without column {name}"))
                })?;
                Ok(cast(column, &DataType::Utf8)
                    .map_err(arrow_error)?
                    .as_string::<i32>()
                    .clone())
            };
            let priority = batch
                .column_by_name("priority")
                .map(|c| cast(c, &DataType::Int64))
                .transpose()
                .map_err(arrow_error)?;
            let (id, provider, field, value) = (
                text("rule_id")?,
                text("provider")?,
                text("field")?,
                text("value")?,
            );
            let (team, app, feature) = (text("team")?, text("app")?, text("feature")?);
            let get = |a: &StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
            for i in 0..batch.num_rows() {
                let rule_id = get(&id, i).unwrap_or_default();
                let invalid = |why: String| Error::CheckViolation {
                    message: format!("finops.attribution_rules: rule '{rule_id}' {why}"),
                };
                let field_name = get(&field, i).unwrap_or_default();
                let target = Target::parse(&field_name).ok_or_else(|| {
                    invalid(format!(
                        "has unknown field '{field_name}' (expected project, workspace, \
                         api_key_id, user_id, environment, model, source or tag:<key>)"
                    ))
                })?;
                let value = get(&value, i).unwrap_or_default();
                if value.is_empty() {
                    return Err(invalid("has an empty value".into()));
                }
                let rule = Rule {
                    rule_id: rule_id.clone(),
                    priority: priority
                        .as_ref()
                        .map(|p| p.as_primitive::<datafusion::arrow::datatypes::Int64Type>())
                        .and_then(|p| p.is_valid(i).then(|| p.value(i))),
                    provider: get(&provider, i)
                        .map(|p| finops_udfs::pricing::canonical_provider(&p)),
                    target,
                    value,
                    team: get(&team, i).filter(|s| !s.is_empty()),
                    app: get(&app, i).filter(|s| !s.is_empty()),
                    feature: get(&feature, i).filter(|s| !s.is_empty()),
                };
                if rule.team.is_none() && rule.app.is_none() && rule.feature.is_none() {
                    return Err(invalid("sets none of team, app, feature".into()));
                }
                rules.push(rule);
            }
        }
        Self::from_rules(rules)
    }

    fn from_rules(mut rules: Vec<Rule>) -> Result<RuleSet> {
        rules.sort_by(|a, b| {
            (a.priority.is_none(), a.priority, &a.rule_id).cmp(&(
                b.priority.is_none(),
                b.priority,
                &b.rule_id,
            ))
        });
        let mut ids = std::collections::HashSet::new();
        if let Some(dup) = rules.iter().find(|r| !ids.insert(r.rule_id.as_str())) {
            return Err(Error::CheckViolation {
                message: format!(
                    "finops.attribution_rules: duplicate rule_id '{}'",
                    dup.rule_id
                ),
            });
        }
        let mut index: HashMap<(Target, String), Vec<usize>> = HashMap::new();
        let mut tag_keys = Vec::new();
        for (pos, rule) in rules.iter().enumerate() {
            index
                .entry((rule.target.clone(), rule.value.clone()))
                .or_default()
                .push(pos);
            if let Target::Tag(key) = &rule.target
                && !tag_keys.contains(key)
            {
                tag_keys.push(key.clone());
            }
        }
        Ok(RuleSet {
            rules,
            index,
            tag_keys,
        })
    }

    /// What of a row the rules look at.
    fn reads(&self) -> Reads {
        let mut reads = Reads::default();
        for rule in &self.rules {
            reads.provider |= rule.provider.is_some();
            match rule.target {
                Target::Column(i) => reads.fields[i] = true,
                Target::Tag(_) => reads.fields[6] = true,
            }
        }
        reads
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule (by priority) matching a row with these field values
    /// ([`MATCH_FIELDS`] order, `tags` last as JSON text).
    fn first_match(&self, provider: &str, fields: &[Option<&str>; 7]) -> Option<&Rule> {
        let mut best: Option<usize> = None;
        let mut consider = |target: Target, value: &str| {
            if let Some(positions) = self.index.get(&(target, value.to_string())) {
                for &pos in positions {
                    if best.is_some_and(|b| b <= pos) {
                        break;
                    }
                    let rule = &self.rules[pos];
                    if rule.provider.as_deref().is_none_or(|p| p == provider) {
                        best = Some(pos);
                        break;
                    }
                }
            }
        };
        for (i, value) in fields[..6].iter().enumerate() {
            if let Some(value) = value {
                consider(Target::Column(i), value);
            }
        }
        if !self.tag_keys.is_empty()
            && let Some(tags) = fields[6]
            && let Ok(serde_json::Value::Object(map)) = serde_json::from_str(tags)
        {
            for key in &self.tag_keys {
                match map.get(key) {
                    Some(serde_json::Value::String(s)) => consider(Target::Tag(key.clone()), s),
                    Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                        consider(Target::Tag(key.clone()), &v.to_string())
                    }
                    _ => {}
                }
            }
        }
        best.map(|pos| &self.rules[pos])
    }
}

/// Shared, atomically swappable reference to the current rules.
pub type RulesHandle = crate::swap::Swap<RuleSet>;

const NAME: &str = "attribute_usage";
const SYNTAX: &str = "attribute_usage(provider, team, app, feature, project, api_key_id, user_id, environment, model, source, tags)";

static DOCUMENTATION: LazyLock<Documentation> = LazyLock::new(|| {
    Documentation::builder(
        finops_udfs::FINOPS_SECTION,
        "The owner of a usage row after `finops.attribution_rules`: a struct of `team`, `app`, \
         `feature` and the `rule_id` that matched. The first rule by priority whose provider and \
         `field = value` match fills what the row leaves NULL; values the row has are kept.",
        SYNTAX,
    )
    .with_sql_example(
        "SELECT attribute_usage(provider, team, app, feature, project, api_key_id, user_id, \
         environment, model, source, tags)['team'] FROM finops.usage_all LIMIT 1;",
    )
    .build()
});

/// The type of the `team` field `attribute_usage` returns.
pub fn team_type() -> DataType {
    DataType::Utf8View
}

/// The struct `attribute_usage` returns: text as `Utf8View`, the type `finops.usage_all` has,
/// so a row's own values pass through without a copy.
fn output_fields() -> Fields {
    Fields::from(vec![
        Field::new("team", team_type(), true),
        Field::new("app", DataType::Utf8View, true),
        Field::new("feature", DataType::Utf8View, true),
        Field::new("rule_id", DataType::Utf8View, true),
    ])
}

/// `attribute_usage`: applies the current rules to each row.
#[derive(Debug)]
pub struct AttributeUsageFunc {
    signature: Signature,
    rules: RulesHandle,
}

impl PartialEq for AttributeUsageFunc {
    fn eq(&self, other: &Self) -> bool {
        self.rules.same_slot(&other.rules)
    }
}

impl Eq for AttributeUsageFunc {}

impl std::hash::Hash for AttributeUsageFunc {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        NAME.hash(state);
        self.rules.slot_id().hash(state);
    }
}

impl AttributeUsageFunc {
    /// The function reading `rules`.
    pub fn new(rules: RulesHandle) -> Self {
        AttributeUsageFunc {
            signature: Signature::user_defined(Volatility::Stable),
            rules,
        }
    }

    /// As a DataFusion UDF.
    pub fn udf(rules: RulesHandle) -> ScalarUDF {
        ScalarUDF::from(Self::new(rules))
    }
}

impl ScalarUDFImpl for AttributeUsageFunc {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Struct(output_fields()))
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> DfResult<Vec<DataType>> {
        if arg_types.len() != 4 + MATCH_FIELDS.len() {
            return exec_err!("{NAME} takes 11 arguments: {SYNTAX}");
        }
        // Text stays as it comes (the call is often simplified to the row's own values).
        Ok(arg_types.iter().map(crate::schema::text_as_given).collect())
    }

    /// Narrows the call to what the current rules read, so a scan reads no column no rule
    /// looks at: without rules the owner is the row's own `team`, `app` and `feature`; with
    /// rules, a field no rule matches on (and `provider` when no rule names one) is passed as
    /// NULL. The rules are those of the statement's planning, as for any stable function.
    fn simplify(&self, args: Vec<Expr>, _info: &SimplifyContext) -> DfResult<ExprSimplifyResult> {
        if args.len() != 4 + MATCH_FIELDS.len() {
            return Ok(ExprSimplifyResult::Original(args));
        }
        let rules = self.rules.snapshot();
        if rules.is_empty() {
            let own = |arg: &Expr| {
                nullif(
                    Expr::Cast(Cast::new(Box::new(arg.clone()), DataType::Utf8View)),
                    lit(ScalarValue::Utf8View(Some(String::new()))),
                )
            };
            return Ok(ExprSimplifyResult::Simplified(named_struct(vec![
                lit("team"),
                own(&args[1]),
                lit("app"),
                own(&args[2]),
                lit("feature"),
                own(&args[3]),
                lit("rule_id"),
                lit(ScalarValue::Utf8View(None)),
            ])));
        }
        let read = rules.reads();
        let unread = |(i, arg): (usize, &Expr)| {
            !matches!(arg, Expr::Literal(v, _) if v.is_null())
                && match i {
                    0 => !read.provider,
                    1..=3 => false,
                    _ => !read.fields[i - 4],
                }
        };
        if !args.iter().enumerate().any(unread) {
            return Ok(ExprSimplifyResult::Original(args));
        }
        let args = args
            .iter()
            .enumerate()
            .map(|(i, arg)| {
                if unread((i, arg)) {
                    lit(ScalarValue::Utf8(None))
                } else {
                    arg.clone()
                }
            })
            .collect();
        Ok(ExprSimplifyResult::Simplified(Expr::ScalarFunction(
            ScalarFunction::new_udf(
                Arc::new(ScalarUDF::from(Self::new(self.rules.clone()))),
                args,
            ),
        )))
    }

    /// Reads the arguments as views in place (a scan's text already is): a row's own values
    /// are kept as they are, and only the rows that lack one are matched against the rules.
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        // `None` for a NULL argument (simplification passes the fields no rule reads as NULL).
        let arrays = args
            .args
            .iter()
            .map(|a| match a {
                ColumnarValue::Scalar(v) if v.is_null() => Ok(None),
                a => Ok(Some(cast(&a.to_array(rows)?, &DataType::Utf8View)?)),
            })
            .collect::<DfResult<Vec<Option<ArrayRef>>>>()?;
        let text: Vec<Option<&StringViewArray>> = arrays
            .iter()
            .map(|a| a.as_ref().map(|a| a.as_string_view()))
            .collect();
        // A view's low 32 bits are the string's length: an empty value is a NULL one.
        let present = |col: usize, row: usize| {
            text[col].is_some_and(|a| a.is_valid(row) && a.views()[row] as u32 != 0)
        };
        let value = |col: usize, row: usize| {
            text[col]
                .filter(|_| present(col, row))
                .map(|a| a.value(row))
        };
        let rules = self.rules.snapshot();
        // Which rule fills each row that lacks one of its own values.
        let mut matched: Vec<(usize, &Rule)> = Vec::new();
        if !rules.is_empty() {
            for row in 0..rows {
                if (1..=3).all(|col| present(col, row)) {
                    continue;
                }
                let provider = value(0, row).unwrap_or_default();
                let fields = std::array::from_fn(|i| value(4 + i, row));
                if let Some(rule) = rules.first_match(provider, &fields) {
                    matched.push((row, rule));
                }
            }
        }
        // What the matched rules set, NULL in every other row.
        let from_rules = |set: fn(&Rule) -> Option<&str>| -> StringViewArray {
            let mut values = StringViewBuilder::with_capacity(rows);
            let mut next = matched.iter().peekable();
            for row in 0..rows {
                match next.next_if(|(r, _)| *r == row) {
                    Some((_, rule)) => values.append_option(set(rule)),
                    None => values.append_null(),
                }
            }
            values.finish()
        };
        // The row's own value ('' read as NULL), else the matched rule's.
        let filled = |col: usize, set: fn(&Rule) -> Option<&str>| -> DfResult<ArrayRef> {
            let own = match text[col] {
                Some(own) => {
                    let empty = cmp::eq(own, &StringViewArray::new_scalar(""))?;
                    compute::nullif(own, &empty)?
                }
                None => new_null_array(&DataType::Utf8View, rows),
            };
            if matched.is_empty() {
                return Ok(own);
            }
            let missing = compute::is_null(&own)?;
            Ok(zip(&missing, &from_rules(set), &own)?)
        };
        let rule_id: ArrayRef = if matched.is_empty() {
            new_null_array(&DataType::Utf8View, rows)
        } else {
            Arc::new(from_rules(|r| Some(r.rule_id.as_str())))
        };
        let columns = vec![
            filled(1, |r| r.team.as_deref())?,
            filled(2, |r| r.app.as_deref())?,
            filled(3, |r| r.feature.as_deref())?,
            rule_id,
        ];
        Ok(ColumnarValue::Array(Arc::new(StructArray::try_new(
            output_fields(),
            columns,
            None,
        )?)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        Some(&DOCUMENTATION)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type RuleRow<'a> = (
        &'a str,
        Option<i64>,
        Option<&'a str>,
        &'a str,
        &'a str,
        Option<&'a str>,
    );

    fn rules(rows: &[RuleRow<'_>]) -> Result<RuleSet> {
        let col = |f: &dyn Fn(&RuleRow<'_>) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
        };
        let batch = RecordBatch::try_new(
            rules_schema(),
            vec![
                col(&|r| Some(r.0.to_string())),
                Arc::new(datafusion::arrow::array::Int64Array::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                col(&|r| r.2.map(String::from)),
                col(&|r| Some(r.3.to_string())),
                col(&|r| Some(r.4.to_string())),
                col(&|r| r.5.map(String::from)),
                col(&|_| None),
                col(&|_| None),
            ],
        )
        .map_err(arrow_error)?;
        RuleSet::from_batches(&[batch])
    }

    /// [`owners_of`] the two test rows, which must be the same whether the table's text is
    /// `Utf8` or `Utf8View`.
    async fn owners(handle: &RulesHandle) -> (Vec<[Option<String>; 4]>, Vec<String>) {
        let utf8 = owners_of(handle, DataType::Utf8).await;
        let view = owners_of(handle, DataType::Utf8View).await;
        assert_eq!(utf8, view, "Utf8 and Utf8View give other owners");
        utf8
    }

    /// `(team, app, feature, rule_id)` of `attribute_usage` over two rows, and the columns the
    /// plan's scan reads: row 1 has an empty team, api key `k1` and user `u1`; row 2 its own
    /// team, app and feature.
    async fn owners_of(
        handle: &RulesHandle,
        text: DataType,
    ) -> (Vec<[Option<String>; 4]>, Vec<String>) {
        use datafusion::datasource::MemTable;
        use datafusion::prelude::SessionContext;
        let names = ARGUMENTS;
        let schema = Arc::new(Schema::new(
            names
                .iter()
                .map(|n| Field::new(*n, text.clone(), true))
                .collect::<Vec<_>>(),
        ));
        let column = |name: &str| -> ArrayRef {
            let values: [Option<&str>; 2] = match name {
                "provider" => [Some("openai"), Some("openai")],
                "team" => [Some(""), Some("ops")],
                "app" => [None, Some("bot")],
                "feature" => [None, Some("chat")],
                "api_key_id" => [Some("k1"), Some("k1")],
                "user_id" => [Some("u1"), None],
                _ => [None, None],
            };
            cast(&StringArray::from(values.to_vec()), &text).expect("text")
        };
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            names.iter().map(|n| column(n)).collect(),
        )
        .expect("rows");
        let ctx = SessionContext::new();
        ctx.register_udf(AttributeUsageFunc::udf(handle.clone()));
        ctx.register_table(
            "u",
            Arc::new(MemTable::try_new(schema, vec![vec![batch]]).expect("table")),
        )
        .expect("registered");
        let df = ctx
            .sql(
                "SELECT o['team'], o['app'], o['feature'], o['rule_id'] FROM (SELECT \
                 attribute_usage(provider, team, app, feature, project, api_key_id, user_id, \
                 environment, model, source, tags) AS o FROM u)",
            )
            .await
            .expect("planned");
        let mut plan = df
            .clone()
            .create_physical_plan()
            .await
            .expect("physical plan");
        while let Some(child) = plan.children().first().map(|c| Arc::clone(*c)) {
            plan = child;
        }
        let scanned = plan
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let rows = owner_rows(&df.collect().await.expect("ran"));
        (rows, scanned)
    }

    /// The rows of four text columns (`team`, `app`, `feature`, `rule_id`).
    fn owner_rows(batches: &[RecordBatch]) -> Vec<[Option<String>; 4]> {
        let mut rows = Vec::new();
        for batch in batches {
            let text: Vec<StringArray> = batch
                .columns()
                .iter()
                .map(|c| {
                    cast(c, &DataType::Utf8)
                        .expect("text")
                        .as_string::<i32>()
                        .clone()
                })
                .collect();
            for row in 0..batch.num_rows() {
                rows.push(std::array::from_fn(|i| {
                    text[i]
                        .is_valid(row)
                        .then(|| text[i].value(row).to_string())
                }));
            }
        }
        rows
    }

    fn owner(values: [Option<&str>; 4]) -> [Option<String>; 4] {
        values.map(|v| v.map(String::from))
    }

    #[tokio::test]
    async fn a_scan_reads_only_the_columns_the_rules_look_at() {
        let handle = RulesHandle::default();
        let (rows, plan) = owners(&handle).await;
        assert_eq!(
            rows,
            vec![
                owner([None, None, None, None]),
                owner([Some("ops"), Some("bot"), Some("chat"), None]),
            ]
        );
        assert_eq!(plan, ["team", "app", "feature"]);

        handle.replace(
            rules(&[("by-key", Some(1), None, "api_key_id", "k1", Some("search"))]).expect("rules"),
        );
        let (rows, plan) = owners(&handle).await;
        assert_eq!(
            rows,
            vec![
                owner([Some("search"), None, None, Some("by-key")]),
                owner([Some("ops"), Some("bot"), Some("chat"), None]),
            ]
        );
        assert_eq!(plan, ["team", "app", "feature", "api_key_id"]);

        handle.replace(
            rules(&[
                (
                    "by-key",
                    Some(1),
                    Some("anthropic"),
                    "api_key_id",
                    "k1",
                    Some("search"),
                ),
                ("by-user", Some(2), None, "user", "u1", Some("growth")),
            ])
            .expect("rules"),
        );
        let (rows, plan) = owners(&handle).await;
        assert_eq!(
            rows[0],
            owner([Some("growth"), None, None, Some("by-user")])
        );
        assert_eq!(
            plan,
            [
                "provider",
                "team",
                "app",
                "feature",
                "api_key_id",
                "user_id"
            ]
        );
    }

    #[tokio::test]
    async fn rules_fill_only_what_a_row_lacks_in_short_and_long_text() {
        let handle = RulesHandle::default();
        handle.replace(
            rules(&[("by-key", Some(1), None, "api_key_id", "k1", Some("search"))]).expect("rules"),
        );
        let ctx = datafusion::prelude::SessionContext::new();
        ctx.register_udf(AttributeUsageFunc::udf(handle));
        let long_app = "an-application-name-longer-than-a-view";
        let long_team = "a-team-name-longer-than-twelve-bytes";
        let expected = vec![
            owner([Some("search"), Some(long_app), None, Some("by-key")]),
            owner([Some(long_team), None, Some("f"), Some("by-key")]),
            owner([Some("ops"), Some("bot"), Some("chat"), None]),
            owner([None, None, None, None]),
        ];
        for text in ["Utf8", "Utf8View"] {
            let sql = format!(
                "SELECT o['team'], o['app'], o['feature'], o['rule_id'] FROM (SELECT \
                 attribute_usage(p, t, a, f, NULL, k, NULL, NULL, NULL, NULL, NULL) AS o FROM \
                 (SELECT arrow_cast(column1, '{text}') AS p, arrow_cast(column2, '{text}') AS t, \
                 arrow_cast(column3, '{text}') AS a, arrow_cast(column4, '{text}') AS f, \
                 arrow_cast(column5, '{text}') AS k, column6 AS n FROM (VALUES \
                 ('openai', NULL, '{long_app}', '', 'k1', 1), \
                 ('openai', '{long_team}', NULL, 'f', 'k1', 2), \
                 ('openai', 'ops', 'bot', 'chat', 'k1', 3), \
                 ('openai', NULL, NULL, NULL, 'k2', 4))) ORDER BY n)"
            );
            let batches = ctx.sql(&sql).await.expect("planned").collect().await;
            assert_eq!(owner_rows(&batches.expect("ran")), expected, "{text}");
        }
    }

    fn team_of(set: &RuleSet, provider: &str, fields: [Option<&str>; 7]) -> Option<String> {
        set.first_match(provider, &fields)
            .and_then(|r| r.team.clone())
    }

    #[test]
    fn first_rule_by_priority_wins_and_provider_filters() {
        let set = rules(&[
            ("b", Some(20), None, "project", "p1", Some("wide")),
            (
                "a",
                Some(10),
                Some("openai"),
                "api_key_id",
                "k1",
                Some("narrow"),
            ),
            ("c", None, None, "tag:cost_center", "CC-7", Some("tagged")),
        ])
        .expect("valid rules");
        let row = [Some("p1"), Some("k1"), None, None, None, None, None];
        assert_eq!(team_of(&set, "openai", row).as_deref(), Some("narrow"));
        assert_eq!(team_of(&set, "anthropic", row).as_deref(), Some("wide"));
        let tagged = [
            None,
            None,
            None,
            None,
            None,
            None,
            Some(r#"{"cost_center":"CC-7"}"#),
        ];
        assert_eq!(team_of(&set, "openai", tagged).as_deref(), Some("tagged"));
        let nothing = [Some("p2"), None, None, None, None, None, Some("not json")];
        assert_eq!(team_of(&set, "openai", nothing), None);
    }

    #[test]
    fn invalid_rules_are_rejected_with_their_id() {
        let err = rules(&[("r1", None, None, "colour", "x", Some("t"))]).expect_err("bad field");
        assert!(err.to_string().contains("r1"), "{err}");
        let err = rules(&[("r2", None, None, "project", "x", None)]).expect_err("no target");
        assert!(err.to_string().contains("sets none"), "{err}");
        let err = rules(&[
            ("r3", None, None, "project", "x", Some("t")),
            ("r3", None, None, "project", "y", Some("t")),
        ])
        .expect_err("duplicate");
        assert!(err.to_string().contains("duplicate"), "{err}");
        assert!(rules(&[("w", None, None, "workspace", "wrk_1", Some("t"))]).is_ok());
    }
}
