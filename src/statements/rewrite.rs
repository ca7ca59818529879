//! Syntax-tree rewrites for Postgres constructs DataFusion does not plan, applied after the
//! Postgres-compatible parser's own rules.
//!
//! Only rewrites with the same meaning belong here; never a rewrite of SQL text.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArguments, Query, SelectItem, SetExpr, Statement, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Rewrite `statement`; `None` when nothing changed.
pub fn rewrite(statement: &Statement) -> Option<Statement> {
    let mut rewritten = statement.clone();
    let mut arrays = ArraySubquery { changed: false };
    let _ = rewritten.visit(&mut arrays);
    let mut escapes = LikeEscape { changed: false };
    let _ = rewritten.visit(&mut escapes);
    (arrays.changed || escapes.changed).then_some(rewritten)
}

/// `ARRAY(SELECT e FROM ... [ORDER BY o])` → `(SELECT array_agg(e [ORDER BY o]) FROM ...)`,
/// which DataFusion plans as a (possibly correlated) scalar subquery. psql's `\du` sends it.
struct ArraySubquery {
    changed: bool,
}

fn as_array_agg(query: &Query) -> Option<Query> {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    if select.projection.len() != 1 || query.limit_clause.is_some() || query.fetch.is_some() {
        return None;
    }
    let element = match &select.projection[0] {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e.clone(),
        _ => return None,
    };
    let order = query
        .order_by
        .as_ref()
        .map(|o| format!(" {o}"))
        .unwrap_or_default();
    let aggregate = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(&format!("array_agg({element}{order})"))
        .ok()?
        .parse_expr()
        .ok()?;
    let mut query = query.clone();
    query.order_by = None;
    if let SetExpr::Select(select) = query.body.as_mut() {
        select.projection = vec![SelectItem::UnnamedExpr(aggregate)];
    }
    Some(query)
}

impl VisitorMut for ArraySubquery {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Self::Break> {
        if let Expr::Function(function) = expr
            && function.name.to_string().eq_ignore_ascii_case("array")
            && let FunctionArguments::Subquery(query) = &function.args
            && let Some(aggregated) = as_array_agg(query)
        {
            *expr = Expr::Subquery(Box::new(aggregated));
            self.changed = true;
        }
        ControlFlow::Continue(())
    }
}

/// `x [I]LIKE 'p' ESCAPE 'c'` → the same pattern written with DataFusion's only escape character,
/// the backslash (SQLAlchemy and Metabase send `ESCAPE '/'`).
struct LikeEscape {
    changed: bool,
}

/// Re-escape `pattern` from escape character `escape` to backslash.
fn to_backslash_escapes(pattern: &str, escape: char) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == escape {
            match chars.next() {
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => out.push(c),
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    out
}

impl VisitorMut for LikeEscape {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<Self::Break> {
        if let Expr::Like {
            pattern,
            escape_char,
            ..
        }
        | Expr::ILike {
            pattern,
            escape_char,
            ..
        } = expr
        {
            let escape = escape_char
                .as_ref()
                .and_then(|v| v.value.clone().into_string())
                .and_then(|s| {
                    let mut chars = s.chars();
                    match (chars.next(), chars.next()) {
                        (Some(c), None) if c != '\\' => Some(c),
                        _ => None,
                    }
                });
            if let (Some(escape), Expr::Value(value)) = (escape, pattern.as_mut())
                && let Value::SingleQuotedString(text) = &mut value.value
            {
                *text = to_backslash_escapes(text, escape);
                *escape_char = None;
                self.changed = true;
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let statement = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(sql)
            .and_then(|mut p| p.parse_statement())
            .expect("parses");
        rewrite(&statement)
            .map(|s| s.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn array_subquery_becomes_array_agg() {
        let out =
            rewritten("SELECT ARRAY(SELECT b.x FROM t b WHERE b.id = r.id ORDER BY 1) AS m FROM r");
        assert_eq!(
            out,
            "SELECT (SELECT array_agg(b.x ORDER BY 1) FROM t b WHERE b.id = r.id) AS m FROM r"
        );
    }

    #[test]
    fn like_escape_is_rewritten_to_backslash() {
        assert_eq!(
            rewritten("SELECT a LIKE 'x/_y%' ESCAPE '/' FROM t"),
            "SELECT a LIKE 'x\\_y%' FROM t"
        );
        assert_eq!(to_backslash_escapes("a\\b//c", '/'), "a\\\\b\\/c");
    }

    #[test]
    fn other_statements_are_untouched() {
        assert_eq!(rewritten("SELECT ARRAY[1, 2]"), "");
        assert_eq!(rewritten("SELECT array_length(ARRAY[1], 1)"), "");
    }
}
