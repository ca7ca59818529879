//! The one place where errors become SQLSTATE codes.
//!
//! Every error a client sees passes through [`error_info`] or [`map_pgwire`]. It must not decide
//! whether something is an error, only how it is reported.

use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use pgwire::error::{ErrorInfo, PgWireError};

use crate::error::{Error, ErrorKind};

/// `42601` syntax error.
pub const SYNTAX_ERROR: &str = "42601";
/// `42P01` undefined table.
pub const UNDEFINED_TABLE: &str = "42P01";
/// `42P07` duplicate table.
pub const DUPLICATE_TABLE: &str = "42P07";
/// `42703` undefined column.
pub const UNDEFINED_COLUMN: &str = "42703";
/// `42883` undefined function.
pub const UNDEFINED_FUNCTION: &str = "42883";
/// `42704` undefined object (e.g. an unknown configuration parameter).
pub const UNDEFINED_OBJECT: &str = "42704";
/// `26000` invalid SQL statement name (no prepared statement of that name).
pub const INVALID_STATEMENT_NAME: &str = "26000";
/// `42804` datatype mismatch.
pub const DATATYPE_MISMATCH: &str = "42804";
/// `22P02` invalid text representation.
pub const INVALID_TEXT: &str = "22P02";
/// A date or time out of range.
pub const DATETIME_OVERFLOW: &str = "22008";
/// `22007` invalid datetime format: a date or time text that does not match its pattern.
pub const INVALID_DATETIME_FORMAT: &str = "22007";
/// `22P04` bad copy file format.
pub const BAD_COPY_FORMAT: &str = "22P04";
/// `22012` division by zero.
pub const DIVISION_BY_ZERO: &str = "22012";
/// `22003` numeric value out of range.
pub const OUT_OF_RANGE: &str = "22003";
/// `22023` invalid parameter value.
pub const INVALID_PARAMETER: &str = "22023";
/// object_in_use: the data directory is held by another process.
pub const OBJECT_IN_USE: &str = "55006";
/// `23502` not-null violation.
pub const NOT_NULL: &str = "23502";
/// `23514` check violation.
pub const CHECK_VIOLATION: &str = "23514";
/// `25P02` in failed SQL transaction.
pub const IN_FAILED_TRANSACTION: &str = "25P02";
/// `28000` invalid authorization specification (e.g. TLS required).
pub const INVALID_AUTHORIZATION: &str = "28000";
/// `28P01` invalid password.
pub const INVALID_PASSWORD: &str = "28P01";
/// `42501` insufficient privilege.
pub const INSUFFICIENT_PRIVILEGE: &str = "42501";
/// `0A000` feature not supported.
pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
/// `53100` disk full.
pub const DISK_FULL: &str = "53100";
/// `53200` out of memory.
pub const OUT_OF_MEMORY: &str = "53200";
/// `53300` too many connections.
pub const TOO_MANY_CONNECTIONS: &str = "53300";
/// `57014` query canceled.
pub const QUERY_CANCELED: &str = "57014";
/// `58030` I/O error.
pub const IO_ERROR: &str = "58030";
/// `XX000` internal error.
pub const INTERNAL_ERROR: &str = "XX000";

/// An `ERROR`-severity message with `code`.
pub fn error(code: &str, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new("ERROR".to_string(), code.to_string(), message.into())
}

/// A `FATAL` message with `code` (the connection ends).
pub fn fatal(code: &str, message: impl Into<String>) -> ErrorInfo {
    ErrorInfo::new("FATAL".to_string(), code.to_string(), message.into())
}

/// The client-facing form of an engine error.
pub fn error_info(e: &Error) -> ErrorInfo {
    let code = match e {
        Error::DataFusion(df) => return datafusion_info(df),
        Error::InvalidValue { .. } => INVALID_TEXT,
        Error::DatetimeOutOfRange { .. } => DATETIME_OVERFLOW,
        Error::NotNullViolation { .. } => NOT_NULL,
        Error::CheckViolation { .. } => CHECK_VIOLATION,
        Error::BadCopyData { .. } | Error::ProviderData { .. } => BAD_COPY_FORMAT,
        Error::InvalidParameter(_) | Error::Config(_) => INVALID_PARAMETER,
        Error::TableNotFound(_) => UNDEFINED_TABLE,
        Error::TableExists(_) => DUPLICATE_TABLE,
        Error::InUse(_) => OBJECT_IN_USE,
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::StorageFull => DISK_FULL,
        Error::Io { .. } | Error::ObjectStore { .. } => IO_ERROR,
        _ => kind_code(e.kind()),
    };
    error(code, e.to_string())
}

fn kind_code(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => UNDEFINED_OBJECT,
        ErrorKind::InvalidInput => SYNTAX_ERROR,
        ErrorKind::Unsupported => FEATURE_NOT_SUPPORTED,
        ErrorKind::ResourceExhausted => OUT_OF_MEMORY,
        ErrorKind::Cancelled => QUERY_CANCELED,
        ErrorKind::PermissionDenied => INSUFFICIENT_PRIVILEGE,
        ErrorKind::Internal => INTERNAL_ERROR,
    }
}

/// The client-facing form of a DataFusion error.
pub fn datafusion_info(e: &DataFusionError) -> ErrorInfo {
    let root = e.find_root();
    if let DataFusionError::External(inner) = root
        && let Some(err) = inner.downcast_ref::<Error>()
    {
        return error_info(err);
    }
    let message = clean_message(root);
    error(datafusion_code(root, &message), message)
}

fn datafusion_code(root: &DataFusionError, message: &str) -> &'static str {
    let lower = message.to_ascii_lowercase();
    if lower.starts_with("prepared statement") && lower.contains("does not exist") {
        return INVALID_STATEMENT_NAME;
    }
    match root {
        DataFusionError::SQL(..) => SYNTAX_ERROR,
        DataFusionError::SchemaError(err, _) => match **err {
            datafusion::common::SchemaError::FieldNotFound { .. } => UNDEFINED_COLUMN,
            _ => SYNTAX_ERROR,
        },
        DataFusionError::Plan(_) => {
            if lower.contains("not found") && lower.contains("table") {
                UNDEFINED_TABLE
            } else if lower.contains("already exists") {
                DUPLICATE_TABLE
            } else if lower.contains("invalid function")
                || lower.contains("unknown function")
                || lower.contains("no function matches")
                || lower.contains("failed to coerce arguments")
            {
                UNDEFINED_FUNCTION
            } else if lower.contains("cannot be cast") || lower.contains("cast") {
                DATATYPE_MISMATCH
            } else if lower.contains("not supported") || lower.contains("not yet supported") {
                // "Delete-returning clause not yet supported": valid SQL the planner lacks.
                FEATURE_NOT_SUPPORTED
            } else {
                SYNTAX_ERROR
            }
        }
        DataFusionError::NotImplemented(_) => FEATURE_NOT_SUPPORTED,
        DataFusionError::ResourcesExhausted(_) => OUT_OF_MEMORY,
        DataFusionError::ArrowError(arrow, _) => match arrow.as_ref() {
            ArrowError::CastError(_) | ArrowError::ParseError(_) => INVALID_TEXT,
            ArrowError::DivideByZero => DIVISION_BY_ZERO,
            ArrowError::ArithmeticOverflow(_) => OUT_OF_RANGE,
            ArrowError::InvalidArgumentError(_) => INVALID_PARAMETER,
            _ => INTERNAL_ERROR,
        },
        DataFusionError::Execution(_) => {
            if lower.contains("already exists") {
                DUPLICATE_TABLE
            } else if lower.contains("unrecognized configuration parameter")
                || lower.contains("could not find config namespace")
                || lower.contains("does not exist")
            {
                UNDEFINED_OBJECT
            } else if lower.starts_with("error parsing timestamp from") {
                if lower.contains("out of range") {
                    DATETIME_OVERFLOW
                } else {
                    INVALID_DATETIME_FORMAT
                }
            } else if lower.contains("cast") || lower.contains("invalid") {
                INVALID_TEXT
            } else if lower.contains("divide by zero") || lower.contains("division by zero") {
                DIVISION_BY_ZERO
            } else {
                INTERNAL_ERROR
            }
        }
        DataFusionError::Configuration(_) => UNDEFINED_OBJECT,
        _ => INTERNAL_ERROR,
    }
}

/// DataFusion prefixes messages with its error category; clients want the sentence.
fn clean_message(root: &DataFusionError) -> String {
    if let DataFusionError::SQL(parser_error, _) = root {
        let text = match parser_error.as_ref() {
            datafusion::sql::sqlparser::parser::ParserError::ParserError(m)
            | datafusion::sql::sqlparser::parser::ParserError::TokenizerError(m) => m.clone(),
            other => other.to_string(),
        };
        return format!("syntax error: {text}");
    }
    let text = root.to_string();
    for prefix in [
        "Error during planning: ",
        "Execution error: ",
        "This feature is not implemented: ",
        "Invalid or Unsupported Configuration: ",
        "Schema error: ",
        "Arrow error: ",
        "SQL error: ",
        "Resources exhausted: ",
    ] {
        if let Some(rest) = text.strip_prefix(prefix) {
            return rest.to_string();
        }
    }
    text
}

/// Rewrite a pgwire error from the query layer so that it carries the right SQLSTATE.
pub fn map_pgwire(e: PgWireError) -> PgWireError {
    match e {
        PgWireError::ApiError(inner) => {
            if let Some(df) = inner.downcast_ref::<DataFusionError>() {
                PgWireError::UserError(Box::new(datafusion_info(df)))
            } else if let Some(err) = inner.downcast_ref::<Error>() {
                PgWireError::UserError(Box::new(error_info(err)))
            } else if let Some(err) =
                inner.downcast_ref::<datafusion::sql::sqlparser::parser::ParserError>()
            {
                PgWireError::UserError(Box::new(error(
                    SYNTAX_ERROR,
                    format!("syntax error: {err}"),
                )))
            } else {
                PgWireError::UserError(Box::new(error(INTERNAL_ERROR, inner.to_string())))
            }
        }
        PgWireError::UserError(mut info) => {
            // Postgres reports commands in an aborted transaction as 25P02 (the query service
            // says 25P01, which is "no transaction block").
            if info.code == "25P01" && info.message.starts_with("current transaction is aborted") {
                info.code = IN_FAILED_TRANSACTION.to_string();
            }
            PgWireError::UserError(info)
        }
        PgWireError::QueryCanceled => PgWireError::UserError(Box::new(error(
            QUERY_CANCELED,
            "canceling statement due to user request",
        ))),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(e: DataFusionError) -> String {
        datafusion_info(&e).code
    }

    #[test]
    fn plan_errors_are_classified() {
        assert_eq!(
            code_of(DataFusionError::Plan(
                "table 'finops.public.x' not found".into()
            )),
            UNDEFINED_TABLE
        );
        assert_eq!(
            code_of(DataFusionError::Plan("Invalid function 'nope'".into())),
            UNDEFINED_FUNCTION
        );
        assert_eq!(
            code_of(DataFusionError::NotImplemented("x".into())),
            FEATURE_NOT_SUPPORTED
        );
        assert_eq!(
            code_of(DataFusionError::Plan(
                "Delete-returning clause not yet supported".into()
            )),
            FEATURE_NOT_SUPPORTED
        );
        assert_eq!(
            code_of(DataFusionError::ResourcesExhausted("x".into())),
            OUT_OF_MEMORY
        );
    }

    #[test]
    fn engine_errors_keep_their_code_through_datafusion() {
        let wrapped = DataFusionError::External(Box::new(Error::NotNullViolation {
            message: "null value in column \"ts\"".into(),
        }));
        let info = datafusion_info(&wrapped.context("while inserting"));
        assert_eq!(info.code, NOT_NULL);
        assert!(info.message.contains("ts"));
    }

    #[test]
    fn aborted_transaction_is_25p02() {
        let e = PgWireError::UserError(Box::new(error(
            "25P01",
            "current transaction is aborted, commands ignored until end of transaction block",
        )));
        let PgWireError::UserError(info) = map_pgwire(e) else {
            panic!("user error expected");
        };
        assert_eq!(info.code, IN_FAILED_TRANSACTION);
        // "No transaction block" stays what it is.
        let e = PgWireError::UserError(Box::new(error(
            "25P01",
            "SAVEPOINT can only be used in transaction blocks",
        )));
        let PgWireError::UserError(info) = map_pgwire(e) else {
            panic!("user error expected");
        };
        assert_eq!(info.code, "25P01");
    }
}
