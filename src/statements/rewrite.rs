//! Syntax-tree rewrites for Postgres constructs DataFusion does not plan, applied after the
//! Postgres-compatible parser's own rules.
//!
//! Only rewrites with the same meaning belong here; never a rewrite of SQL text.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArguments, Query, SelectItem, SetExpr, Statement, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// Rewrite `statement`; `None` when nothing changed.
pub fn rewrite(statement: &Statement) -> Option<Statement> {
    let mut rewritten = statement.clone();
    let mut visitor = ArraySubquery { changed: false };
    let _ = rewritten.visit(&mut visitor);
    visitor.changed.then_some(rewritten)
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
        if let Expr::Function(function) = expr {
            if function.name.to_string().eq_ignore_ascii_case("array") {
                if let FunctionArguments::Subquery(query) = &function.args {
                    if let Some(aggregated) = as_array_agg(query) {
                        *expr = Expr::Subquery(Box::new(aggregated));
                        self.changed = true;
                    }
                }
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
        let out = rewritten("SELECT ARRAY(SELECT b.x FROM t b WHERE b.id = r.id ORDER BY 1) AS m FROM r");
        assert_eq!(
            out,
            "SELECT (SELECT array_agg(b.x ORDER BY 1) FROM t AS b WHERE b.id = r.id) AS m FROM r"
        );
    }

    #[test]
    fn other_statements_are_untouched() {
        assert_eq!(rewritten("SELECT ARRAY[1, 2]"), "");
        assert_eq!(rewritten("SELECT array_length(ARRAY[1], 1)"), "");
    }
}
