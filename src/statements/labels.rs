//! Result column names as Postgres gives them: a column written without an alias is named after
//! its column (`team`), its function (`sum`, `count`), its cast's type when nothing better
//! (`int4`, `date`), a few constructs by their keyword (`case`, `exists`, `coalesce`), and
//! `?column?` otherwise, where DataFusion names it after the whole expression
//! (`sum(finops.usage.cost)`). Clients show these names as column headers and read rows by them.
//!
//! The rules are those of Postgres' `FigureColname`. A name two columns would share (Postgres
//! allows that; a DataFusion plan does not) is given to neither: each keeps its descriptive name.
//!
//! It owns the names of a query's result columns. It must not change what a query computes.

use std::collections::HashMap;

use datafusion::common::Column;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr as PlanExpr, LogicalPlan, LogicalPlanBuilder};
use datafusion::sql::sqlparser::ast::{
    AccessExpr, ArrayElemTypeDef, DataType, Expr, Ident, ObjectName, Query, SelectItem, SetExpr,
    Statement, TimezoneInfo, TrimWhereField,
};

/// The name Postgres gives a column it cannot name.
const UNNAMED: &str = "?column?";

/// `plan`, planned from `statement`, with its result columns named as Postgres names them.
/// Anything but a query, and a query whose columns cannot all be told apart (a `*`), is
/// returned as it is.
pub fn relabel(statement: &Statement, plan: LogicalPlan) -> Result<LogicalPlan> {
    let Statement::Query(query) = statement else {
        return Ok(plan);
    };
    if !super::reads_only(&plan) {
        return Ok(plan);
    }
    let Some(labels) = query_labels(query) else {
        return Ok(plan);
    };
    let schema = plan.schema();
    if labels.len() != schema.fields().len() {
        return Ok(plan);
    }
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for label in &labels {
        *uses.entry(label.as_str()).or_default() += 1;
    }
    let names: Vec<&str> = schema
        .iter()
        .zip(&labels)
        .map(|((_, field), label)| {
            if uses[label.as_str()] == 1 {
                label.as_str()
            } else {
                field.name().as_str()
            }
        })
        .collect();
    // A kept name may still be the label of another column (`SELECT count, count(*)`).
    let mut taken: HashMap<&str, usize> = HashMap::new();
    for name in &names {
        *taken.entry(name).or_default() += 1;
    }
    let fields: Vec<_> = schema.iter().collect();
    let names: Vec<&str> = fields
        .iter()
        .zip(names)
        .map(|((_, field), name)| {
            if taken[name] > 1 {
                field.name().as_str()
            } else {
                name
            }
        })
        .collect();
    if fields
        .iter()
        .zip(&names)
        .all(|((_, field), name)| field.name() == name)
    {
        return Ok(plan);
    }
    let exprs: Vec<PlanExpr> = fields
        .iter()
        .zip(&names)
        .map(|((qualifier, field), name)| {
            let column = PlanExpr::Column(Column::new(qualifier.cloned(), field.name()));
            if field.name() == name {
                column
            } else {
                column.alias(*name)
            }
        })
        .collect();
    LogicalPlanBuilder::from(plan).project(exprs)?.build()
}

/// Give each unaliased column of `rewritten` (a rewrite of `original`, see `rewrite`) whose
/// label the rewrite changed (`'{}'::jsonb` is `json_in('{}')`) its label in `original`, as an
/// alias, where that label is the column's alone.
pub(super) fn keep(original: &Statement, rewritten: &mut Statement) {
    let (Statement::Query(before), Statement::Query(after)) = (original, rewritten) else {
        return;
    };
    let (SetExpr::Select(before), SetExpr::Select(after)) =
        (before.body.as_ref(), after.body.as_mut())
    else {
        return;
    };
    if before.projection.len() != after.projection.len() {
        return;
    }
    let Some(labels) = before
        .projection
        .iter()
        .map(item_label)
        .collect::<Option<Vec<_>>>()
    else {
        return;
    };
    for (i, item) in after.projection.iter_mut().enumerate() {
        let SelectItem::UnnamedExpr(expr) = item else {
            continue;
        };
        let name = &labels[i];
        if label(expr) == *name || labels.iter().filter(|l| *l == name).count() > 1 {
            continue;
        }
        *item = SelectItem::ExprWithAlias {
            expr: expr.clone(),
            alias: Ident::with_quote('"', name.clone()),
        };
    }
}

/// The names of `query`'s columns, or `None` when a `*` hides how many there are.
fn query_labels(query: &Query) -> Option<Vec<String>> {
    body_labels(&query.body)
}

fn body_labels(body: &SetExpr) -> Option<Vec<String>> {
    match body {
        SetExpr::Select(select) => select.projection.iter().map(item_label).collect(),
        SetExpr::Query(query) => query_labels(query),
        // The first branch names the columns of a UNION, INTERSECT or EXCEPT.
        SetExpr::SetOperation { left, .. } => body_labels(left),
        // `column1`, `column2`, ... in both; tables keep their columns' names.
        _ => None,
    }
}

fn item_label(item: &SelectItem) -> Option<String> {
    match item {
        SelectItem::UnnamedExpr(expr) => Some(label(expr)),
        SelectItem::ExprWithAlias { alias, .. } => Some(identifier(alias)),
        _ => None,
    }
}

/// How surely a label names its expression: a weak one (a cast's type, `case`) gives way to a
/// strong one inside it, as in Postgres.
#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Strength {
    Weak,
    Strong,
}

/// Postgres' label for an unaliased `expr`.
pub(super) fn label(expr: &Expr) -> String {
    figure(expr).map_or_else(|| UNNAMED.to_string(), |(name, _)| name)
}

fn strong(name: impl Into<String>) -> Option<(String, Strength)> {
    Some((name.into(), Strength::Strong))
}

fn figure(expr: &Expr) -> Option<(String, Strength)> {
    match expr {
        Expr::Identifier(ident) => strong(identifier(ident)),
        Expr::CompoundIdentifier(parts) => strong(identifier(parts.last()?)),
        Expr::CompoundFieldAccess { root, access_chain } => {
            match access_chain.iter().rev().find_map(|access| match access {
                AccessExpr::Dot(Expr::Identifier(field)) => Some(field),
                _ => None,
            }) {
                Some(field) => strong(identifier(field)),
                None => figure(root),
            }
        }
        Expr::Function(function) => strong(object_name(&function.name)?),
        Expr::Cast {
            expr, data_type, ..
        } => match figure(expr) {
            Some(named @ (_, Strength::Strong)) => Some(named),
            _ => Some((type_name(data_type), Strength::Weak)),
        },
        Expr::TypedString(typed) => Some((type_name(&typed.data_type), Strength::Weak)),
        Expr::Interval(_) => Some(("interval".to_string(), Strength::Weak)),
        Expr::Nested(inner) | Expr::Collate { expr: inner, .. } => figure(inner),
        Expr::Case { else_result, .. } => match else_result.as_deref().and_then(figure) {
            Some(named @ (_, Strength::Strong)) => Some(named),
            _ => Some(("case".to_string(), Strength::Weak)),
        },
        Expr::Exists { negated: false, .. } => strong("exists"),
        Expr::Subquery(query) => strong(query_labels(query)?.into_iter().next()?),
        Expr::Array(_) => strong("array"),
        Expr::Tuple(_) => strong("row"),
        Expr::Extract { .. } => strong("extract"),
        Expr::Substring { .. } => strong("substring"),
        Expr::Position { .. } => strong("position"),
        Expr::Overlay { .. } => strong("overlay"),
        Expr::Ceil { .. } => strong("ceil"),
        Expr::Floor { .. } => strong("floor"),
        Expr::AtTimeZone { .. } => strong("timezone"),
        Expr::Trim { trim_where, .. } => strong(match trim_where {
            Some(TrimWhereField::Leading) => "ltrim",
            Some(TrimWhereField::Trailing) => "rtrim",
            Some(TrimWhereField::Both) | None => "btrim",
        }),
        _ => None,
    }
}

/// An identifier as the planner names it: folded to lower case unless quoted.
fn identifier(ident: &Ident) -> String {
    match ident.quote_style {
        Some(_) => ident.value.clone(),
        None => ident.value.to_ascii_lowercase(),
    }
}

fn object_name(name: &ObjectName) -> Option<String> {
    Some(identifier(name.0.last()?.as_ident()?))
}

/// The name Postgres gives `data_type` (its catalog name: `int4` for `integer`).
fn type_name(data_type: &DataType) -> String {
    let name = match data_type {
        DataType::Int(_) | DataType::Integer(_) | DataType::Int4(_) => "int4",
        DataType::BigInt(_) | DataType::Int8(_) => "int8",
        DataType::SmallInt(_) | DataType::Int2(_) => "int2",
        DataType::Real | DataType::Float4 => "float4",
        DataType::Double(_) | DataType::DoublePrecision | DataType::Float8 => "float8",
        DataType::Float(info) => match info {
            datafusion::sql::sqlparser::ast::ExactNumberInfo::Precision(p)
            | datafusion::sql::sqlparser::ast::ExactNumberInfo::PrecisionAndScale(p, _)
                if *p <= 24 =>
            {
                "float4"
            }
            _ => "float8",
        },
        DataType::Numeric(_) | DataType::Decimal(_) | DataType::Dec(_) => "numeric",
        DataType::Bool | DataType::Boolean => "bool",
        DataType::Varchar(_) | DataType::CharacterVarying(_) | DataType::CharVarying(_) => {
            "varchar"
        }
        DataType::Char(_) | DataType::Character(_) => "bpchar",
        DataType::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => "timestamptz",
        DataType::Timestamp(..) => "timestamp",
        DataType::Time(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => "timetz",
        DataType::Time(..) => "time",
        DataType::Array(
            ArrayElemTypeDef::AngleBracket(inner)
            | ArrayElemTypeDef::SquareBracket(inner, _)
            | ArrayElemTypeDef::Parenthesis(inner),
        ) => return type_name(inner),
        DataType::Custom(name, _) => {
            return object_name(name).unwrap_or_else(|| UNNAMED.to_string());
        }
        // `text`, `date`, `interval`, `json`, `jsonb`, `bytea`, `uuid`, `regclass`, ...: their
        // own names.
        other => {
            let text = other.to_string().to_ascii_lowercase();
            return text.split(['(', ' ']).next().unwrap_or(UNNAMED).to_string();
        }
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn labels(sql: &str) -> Option<Vec<String>> {
        let statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .expect("parses")
            .remove(0);
        let Statement::Query(query) = statement else {
            panic!("not a query: {sql}")
        };
        query_labels(&query)
    }

    fn one(sql: &str) -> String {
        labels(sql).expect("no star").remove(0)
    }

    #[test]
    fn labels_follow_postgres() {
        // Each expected value is what Postgres 16 names the column.
        let cases = [
            ("SELECT team FROM t", "team"),
            ("SELECT u.Team FROM t u", "team"),
            ("SELECT \"Team\" FROM t", "Team"),
            ("SELECT count(*) FROM t", "count"),
            (
                "SELECT pg_catalog.COUNT(x) FILTER (WHERE y) FROM t",
                "count",
            ),
            ("SELECT sum(cost) OVER (PARTITION BY team) FROM t", "sum"),
            ("SELECT round(sum(cost), 2) FROM t", "round"),
            ("SELECT sum(cost) / count(*) FROM t", "?column?"),
            ("SELECT 1", "?column?"),
            ("SELECT 'a'", "?column?"),
            ("SELECT x IS NULL FROM t", "?column?"),
            ("SELECT x::text FROM t", "x"),
            ("SELECT CAST(t.x AS bigint) FROM t", "x"),
            ("SELECT 1::int", "int4"),
            ("SELECT '1'::double precision", "float8"),
            ("SELECT '1.5'::numeric(10, 2)", "numeric"),
            ("SELECT 'x'::varchar(3)", "varchar"),
            ("SELECT 'x'::character(3)", "bpchar"),
            ("SELECT now()::timestamptz", "now"),
            (
                "SELECT '2024-01-01'::timestamp with time zone",
                "timestamptz",
            ),
            ("SELECT DATE '2024-01-01'", "date"),
            ("SELECT '{}'::jsonb", "jsonb"),
            ("SELECT 't'::boolean", "bool"),
            ("SELECT '{1}'::int[]", "int4"),
            ("SELECT 'pg_class'::regclass", "regclass"),
            ("SELECT (count(*))::numeric FROM t", "count"),
            ("SELECT (x + 1)::text FROM t", "text"),
            ("SELECT CASE WHEN x THEN 1 ELSE 0 END FROM t", "case"),
            ("SELECT CASE WHEN x THEN 1 ELSE y END FROM t", "y"),
            ("SELECT EXISTS (SELECT 1)", "exists"),
            ("SELECT NOT EXISTS (SELECT 1)", "?column?"),
            ("SELECT (SELECT max(x) FROM t)", "max"),
            ("SELECT (SELECT max(x) AS top FROM t)", "top"),
            ("SELECT ARRAY[1, 2]", "array"),
            ("SELECT coalesce(a, b) FROM t", "coalesce"),
            ("SELECT nullif(a, b) FROM t", "nullif"),
            ("SELECT EXTRACT(year FROM ts) FROM t", "extract"),
            ("SELECT substring(s FROM 1 FOR 2) FROM t", "substring"),
            ("SELECT trim(s) FROM t", "btrim"),
            ("SELECT trim(LEADING 'x' FROM s) FROM t", "ltrim"),
            ("SELECT ts AT TIME ZONE 'UTC' FROM t", "timezone"),
            ("SELECT current_date", "current_date"),
            ("SELECT INTERVAL '1 day'", "interval"),
            ("SELECT (x) FROM t", "x"),
            ("SELECT sum(cost) AS spend FROM t", "spend"),
            ("SELECT sum(cost) AS \"Spend\" FROM t", "Spend"),
        ];
        for (sql, expected) in cases {
            assert_eq!(one(sql), expected, "{sql}");
        }
    }

    #[test]
    fn set_operations_take_the_first_branch_and_stars_are_left_alone() {
        assert_eq!(
            labels("SELECT count(*) FROM a UNION ALL SELECT sum(x) AS s FROM b").expect("no star"),
            ["count"]
        );
        assert_eq!(labels("(SELECT max(x) FROM a)").expect("no star"), ["max"]);
        assert_eq!(labels("SELECT *, count(*) OVER () FROM t"), None);
        assert_eq!(labels("SELECT t.*, 1 FROM t"), None);
        assert_eq!(labels("VALUES (1, 2)"), None);
    }
}
