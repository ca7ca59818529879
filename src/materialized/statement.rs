//! Recognising the materialized-view statements: `CREATE MATERIALIZED VIEW` and `DROP MATERIALIZED
//! VIEW` from the sqlparser AST, `REFRESH MATERIALIZED VIEW` (which sqlparser cannot parse) from the
//! sqlparser token stream, and the `refresh` option's values.
//!
//! It must not run anything: it only turns statements into [`MvStatement`] requests.

use std::fmt;
use std::time::Duration;

use datafusion::error::DataFusionError;
use datafusion::sql::sqlparser::ast::{
    CreateTableOptions, Expr, ObjectType, SqlOption, Statement, Value,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer, Word};

use crate::error::{Error, Result};

/// When a materialized view is refreshed besides `REFRESH MATERIALIZED VIEW`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshMode {
    /// Only on `REFRESH MATERIALIZED VIEW` (the default).
    Manual,
    /// Shortly after rows are appended to a table it reads (debounced).
    Auto,
    /// Every so often, in the background.
    Every(Duration),
}

impl RefreshMode {
    /// Parse the value of `WITH (refresh = '...')`: `manual`, `auto`, or an interval such as
    /// `5 minutes`, `1 hour`, `30s`.
    pub fn parse(text: &str) -> Result<RefreshMode> {
        let text = text.trim().to_ascii_lowercase();
        match text.as_str() {
            "manual" => return Ok(RefreshMode::Manual),
            "auto" => return Ok(RefreshMode::Auto),
            _ => {}
        }
        let invalid = || {
            Error::InvalidParameter(format!(
                "invalid refresh \"{text}\": expected 'manual', 'auto' or an interval such as '5 minutes'"
            ))
        };
        let digits_end = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let count: u64 = text[..digits_end].parse().map_err(|_| invalid())?;
        let seconds_per_unit = match text[digits_end..].trim() {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            _ => return Err(invalid()),
        };
        match count.checked_mul(seconds_per_unit) {
            Some(secs) if secs > 0 => Ok(RefreshMode::Every(Duration::from_secs(secs))),
            _ => Err(invalid()),
        }
    }
}

impl fmt::Display for RefreshMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefreshMode::Manual => f.write_str("manual"),
            RefreshMode::Auto => f.write_str("auto"),
            RefreshMode::Every(every) => {
                let secs = every.as_secs();
                // The largest unit that divides exactly, so that the value parses back unchanged.
                let (n, unit) = [(86_400, "day"), (3600, "hour"), (60, "minute")]
                    .into_iter()
                    .find(|(size, _)| secs % size == 0)
                    .map(|(size, unit)| (secs / size, unit))
                    .unwrap_or((secs, "second"));
                let plural = if n == 1 { "" } else { "s" };
                write!(f, "{n} {unit}{plural}")
            }
        }
    }
}

/// `CREATE MATERIALIZED VIEW` as a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateRequest {
    /// The view's name as written (`kpi.daily`), resolved against the session's default schema.
    pub name: String,
    /// The defining query, as SQL text.
    pub query: String,
    /// `WITH (refresh = ...)`; [`RefreshMode::Manual`] when absent.
    pub refresh: RefreshMode,
    /// `IF NOT EXISTS`: an existing view is left alone.
    pub if_not_exists: bool,
}

/// A materialized-view statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MvStatement {
    /// `CREATE MATERIALIZED VIEW`.
    Create(CreateRequest),
    /// `REFRESH MATERIALIZED VIEW name`.
    Refresh(String),
    /// `DROP MATERIALIZED VIEW [IF EXISTS] name, ...`.
    Drop {
        /// The views to drop.
        names: Vec<String>,
        /// `IF EXISTS`: a missing view is not an error.
        if_exists: bool,
    },
}

impl MvStatement {
    /// The command tag Postgres answers with.
    pub fn command_tag(&self) -> &'static str {
        match self {
            MvStatement::Create(_) => "CREATE MATERIALIZED VIEW",
            MvStatement::Refresh(_) => "REFRESH MATERIALIZED VIEW",
            MvStatement::Drop { .. } => "DROP MATERIALIZED VIEW",
        }
    }
}

/// Recognise a parsed materialized-view statement: `None` when `statement` is something else,
/// an error when it is one but uses a clause finops-db does not support.
pub fn recognise(statement: &Statement) -> Option<Result<MvStatement>> {
    match statement {
        Statement::CreateView(view) if view.materialized => Some(create_request(view)),
        Statement::Drop {
            object_type: ObjectType::MaterializedView,
            if_exists,
            names,
            ..
        } => Some(Ok(MvStatement::Drop {
            names: names.iter().map(|n| n.to_string()).collect(),
            if_exists: *if_exists,
        })),
        _ => None,
    }
}

fn create_request(view: &datafusion::sql::sqlparser::ast::CreateView) -> Result<MvStatement> {
    if view.or_replace || view.or_alter {
        return Err(Error::Unsupported(
            "CREATE OR REPLACE MATERIALIZED VIEW; drop the view and create it again".into(),
        ));
    }
    if !view.columns.is_empty() {
        return Err(Error::Unsupported(
            "a column list on CREATE MATERIALIZED VIEW; alias the columns in the query".into(),
        ));
    }
    if view.temporary || view.to.is_some() {
        return Err(Error::Unsupported(
            "TEMPORARY or TO on CREATE MATERIALIZED VIEW".into(),
        ));
    }
    let options = match &view.options {
        CreateTableOptions::None => &[][..],
        CreateTableOptions::With(options) => options.as_slice(),
        _ => {
            return Err(Error::Unsupported(
                "options on CREATE MATERIALIZED VIEW other than WITH (refresh = ...)".into(),
            ));
        }
    };
    let mut refresh = RefreshMode::Manual;
    for option in options {
        let SqlOption::KeyValue { key, value } = option else {
            return Err(Error::InvalidParameter(format!(
                "unrecognized materialized view option \"{option}\""
            )));
        };
        if !key.value.eq_ignore_ascii_case("refresh") {
            return Err(Error::InvalidParameter(format!(
                "unrecognized materialized view option \"{}\"",
                key.value
            )));
        }
        refresh = RefreshMode::parse(&option_text(value))?;
    }
    Ok(MvStatement::Create(CreateRequest {
        name: view.name.to_string(),
        query: view.query.to_string(),
        refresh,
        if_not_exists: view.if_not_exists,
    }))
}

/// The text of an option value: `'5 minutes'` and `auto` alike.
fn option_text(value: &Expr) -> String {
    match value {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(ident) => ident.value.clone(),
        other => other.to_string(),
    }
}

/// Recognise `REFRESH MATERIALIZED VIEW [CONCURRENTLY] name [WITH DATA]` with the sqlparser
/// tokenizer. `None` when `sql` is not a refresh statement; an error when it starts like one
/// but is malformed. The name is returned as written, unquoted parts folded to lower case.
pub fn parse_refresh(sql: &str) -> Option<Result<String>> {
    // Every query passes here: most are settled without tokenizing them.
    if !sql
        .as_bytes()
        .windows(b"refresh".len())
        .any(|w| w.eq_ignore_ascii_case(b"refresh"))
    {
        return None;
    }
    let tokens = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize().ok()?;
    let mut tokens = tokens
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .peekable();
    for keyword in ["REFRESH", "MATERIALIZED", "VIEW"] {
        match tokens.next() {
            Some(Token::Word(w)) if is_keyword(&w, keyword) => {}
            _ => return None,
        }
    }
    let syntax = |message: &str| {
        Some(Err(Error::DataFusion(DataFusionError::SQL(
            Box::new(ParserError::ParserError(format!(
                "{message} in REFRESH MATERIALIZED VIEW"
            ))),
            None,
        ))))
    };
    if matches!(tokens.peek(), Some(Token::Word(w)) if is_keyword(w, "CONCURRENTLY")) {
        // Readers never block on a refresh here, so CONCURRENTLY changes nothing.
        tokens.next();
    }
    let mut parts = Vec::new();
    loop {
        match tokens.next() {
            Some(Token::Word(w)) => parts.push(match w.quote_style {
                Some(_) => w.value,
                None => w.value.to_lowercase(),
            }),
            _ => return syntax("expected a view name"),
        }
        if !matches!(tokens.peek(), Some(Token::Period)) {
            break;
        }
        tokens.next();
    }
    if matches!(tokens.peek(), Some(Token::Word(w)) if is_keyword(w, "WITH")) {
        tokens.next();
        match tokens.next() {
            Some(Token::Word(w)) if is_keyword(&w, "DATA") => {}
            Some(Token::Word(w)) if is_keyword(&w, "NO") => {
                return Some(Err(Error::Unsupported(
                    "REFRESH MATERIALIZED VIEW ... WITH NO DATA".into(),
                )));
            }
            _ => return syntax("expected DATA after WITH"),
        }
    }
    while matches!(tokens.peek(), Some(Token::SemiColon)) {
        tokens.next();
    }
    match tokens.next() {
        None | Some(Token::EOF) => {}
        Some(_) => return syntax("unexpected input after the view name"),
    }
    let quoted: Vec<String> = parts.iter().map(|p| quote_part(p)).collect();
    Some(Ok(quoted.join(".")))
}

fn is_keyword(word: &Word, keyword: &str) -> bool {
    word.quote_style.is_none() && word.value.eq_ignore_ascii_case(keyword)
}

/// Quote a name part when folding would change it, so that name resolution sees it as written.
fn quote_part(part: &str) -> String {
    let plain = part
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !part.starts_with(|c: char| c.is_ascii_digit());
    if plain && !part.is_empty() {
        part.to_string()
    } else {
        format!("\"{}\"", part.replace('"', "\"\""))
    }
}
