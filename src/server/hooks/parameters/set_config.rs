//! `SELECT set_config('name', 'value', is_local)`, recognized on the parsed statement so the
//! parameters hook can set the parameter as `SET` does and answer with its new value, as
//! Postgres' function does (a function DataFusion runs cannot change the session).
//!
//! It owns only the recognition: a `SELECT` of that one call with literal arguments, no `FROM`.

use datafusion::sql::sqlparser::ast::{
    Expr, FunctionArg, FunctionArgExpr, FunctionArguments, ObjectNamePart, SelectItem, SetExpr,
    Statement, Value,
};

/// What a `set_config` call asks.
#[derive(Debug, PartialEq)]
pub(super) struct SetConfig {
    pub name: String,
    pub value: String,
    pub local: bool,
    /// The result column: `set_config`, or the call's alias.
    pub column: String,
}

/// The `set_config` call `statement` is, if it is one.
pub(super) fn set_config(statement: &Statement) -> Option<SetConfig> {
    let Statement::Query(query) = statement else {
        return None;
    };
    let SetExpr::Select(select) = query.body.as_ref() else {
        return None;
    };
    if query.with.is_some()
        || query.order_by.is_some()
        || query.limit_clause.is_some()
        || !select.from.is_empty()
        || select.selection.is_some()
        || select.projection.len() != 1
    {
        return None;
    }
    let (expr, column) = match &select.projection[0] {
        SelectItem::UnnamedExpr(expr) => (expr, "set_config".to_string()),
        SelectItem::ExprWithAlias { expr, alias } => (expr, alias.value.clone()),
        _ => return None,
    };
    let Expr::Function(function) = expr else {
        return None;
    };
    // Compared in place: every lone function call (`SELECT finops.reserve(...)`) comes here.
    let is = |part: &ObjectNamePart, word: &str| matches!(part, ObjectNamePart::Identifier(ident) if ident.value.eq_ignore_ascii_case(word));
    match function.name.0.as_slice() {
        [name] if is(name, "set_config") => {}
        [schema, name] if is(schema, "pg_catalog") && is(name, "set_config") => {}
        _ => return None,
    }
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    let literals: Vec<&Value> = list
        .args
        .iter()
        .filter_map(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => Some(&v.value),
            _ => None,
        })
        .collect();
    let [name, value, local] = literals.as_slice() else {
        return None;
    };
    let text = |v: &Value| match v {
        Value::SingleQuotedString(s) => Some(s.clone()),
        _ => None,
    };
    Some(SetConfig {
        name: text(name)?,
        value: text(value)?,
        local: match local {
            Value::Boolean(b) => *b,
            _ => return None,
        },
        column,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn parsed(sql: &str) -> Option<SetConfig> {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses");
        set_config(&statements[0])
    }

    #[test]
    fn only_a_lone_literal_call_is_recognized() {
        assert_eq!(
            parsed("SELECT set_config('search_path', 'finops, public', false)"),
            Some(SetConfig {
                name: "search_path".into(),
                value: "finops, public".into(),
                local: false,
                column: "set_config".into(),
            })
        );
        let aliased = parsed("select pg_catalog.set_config('myapp.tenant', 'a', true) as t")
            .expect("recognized");
        assert_eq!((aliased.local, aliased.column.as_str()), (true, "t"));
        assert_eq!(parsed("SELECT set_config('a.b', 'c', false), 1"), None);
        assert_eq!(parsed("SELECT set_config('a.b', 'c', false) FROM t"), None);
        assert_eq!(parsed("SELECT set_config('a.b', $1, false)"), None);
        assert_eq!(parsed("SELECT current_setting('a.b')"), None);
    }
}
