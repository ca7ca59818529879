//! The root crate's error type: one enum with domain variants that carry context, and one
//! classification of it.
//!
//! It must not know about SQLSTATE codes or the wire protocol: `server/sqlstate.rs` maps
//! [`ErrorKind`] (and the few variants that need a finer code) to SQLSTATE.

use datafusion::error::DataFusionError;

/// Result alias for the root crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong inside finops-db.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A query or plan failed inside DataFusion.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),

    /// Reading or writing the object store failed.
    #[error("storage error at {location}: {source}")]
    ObjectStore {
        /// The object (file) or prefix concerned.
        location: String,
        /// The underlying failure.
        #[source]
        source: object_store::Error,
    },

    /// A stored object (manifest, WAL, segment, key index) is unreadable or inconsistent.
    #[error("corrupt storage at {location}: {message}")]
    Corrupt {
        /// The object concerned.
        location: String,
        /// What is wrong with it.
        message: String,
    },

    /// Local I/O failed.
    #[error("I/O error at {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: String,
        /// The underlying failure.
        #[source]
        source: std::io::Error,
    },

    /// The configuration is invalid; the server refuses to start.
    #[error("invalid configuration: {0}")]
    Config(String),

    /// The data directory is held by another process (a running server); SQLSTATE 55006.
    #[error("data directory {0} is in use by another finops-db process")]
    InUse(String),

    /// A value does not fit its column (bad literal, wrong type) — SQLSTATE 22P02.
    #[error("{message}")]
    InvalidValue {
        /// What is wrong and where (table, column, line).
        message: String,
    },

    /// A time outside the range queries compute with (years 1677 to 2262) — SQLSTATE 22008.
    #[error("{message}")]
    DatetimeOutOfRange {
        /// The value, its column and row.
        message: String,
    },

    /// A NOT NULL column got no value — SQLSTATE 23502.
    #[error("{message}")]
    NotNullViolation {
        /// Which column of which row.
        message: String,
    },

    /// A row breaks a table's constraint (overlapping price validity, negative budget) — 23514.
    #[error("{message}")]
    CheckViolation {
        /// The rule and the offending rows.
        message: String,
    },

    /// Malformed input file or COPY data (bad CSV line, truncated JSON) — SQLSTATE 22P04.
    #[error("{message}")]
    BadCopyData {
        /// What is wrong and where (file or COPY line number).
        message: String,
    },

    /// A provider export file, or one record in it, cannot be read (malformed, truncated, or not
    /// the declared format) — SQLSTATE 22P04 like other bad input files.
    #[error("{format} file {file}, {location}: {message}")]
    ProviderData {
        /// The declared format (`OPENAI_USAGE`, ...).
        format: String,
        /// The file (object store location).
        file: String,
        /// 1-based line of the record, when the layout is line-oriented.
        line: Option<u64>,
        /// Human position of the record (`line 12`, `bucket 2, result 3`).
        location: String,
        /// What is wrong.
        message: String,
    },

    /// An argument has an unacceptable value (unknown option, bad cron string) — SQLSTATE 22023.
    #[error("{0}")]
    InvalidParameter(String),

    /// A relation was not found.
    #[error("relation \"{0}\" does not exist")]
    TableNotFound(String),

    /// A relation already exists.
    #[error("relation \"{0}\" already exists")]
    TableExists(String),

    /// The statement is valid SQL that finops-db does not support.
    #[error("not supported: {0}")]
    Unsupported(String),

    /// The current user may not do this.
    #[error("permission denied: {0}")]
    PermissionDenied(String),

    /// The statement was cancelled or hit `statement_timeout`.
    #[error("canceling statement due to {0}")]
    Cancelled(&'static str),

    /// A limit was hit (memory pool, connections).
    #[error("{0}")]
    ResourceExhausted(String),

    /// A bug or broken invariant.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The broad class of an error, used to choose SQLSTATE codes and exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Something named does not exist.
    NotFound,
    /// The input (SQL, value, file) is wrong.
    InvalidInput,
    /// Valid but not supported.
    Unsupported,
    /// A limit was hit.
    ResourceExhausted,
    /// Cancelled by the client or a timeout.
    Cancelled,
    /// Not allowed for this user.
    PermissionDenied,
    /// Anything else.
    Internal,
}

impl Error {
    /// Classify this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::DataFusion(e) => classify_datafusion(e),
            Error::ObjectStore { source, .. } => match source {
                object_store::Error::NotFound { .. } => ErrorKind::NotFound,
                _ => ErrorKind::Internal,
            },
            Error::Corrupt { .. } => ErrorKind::Internal,
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => ErrorKind::NotFound,
                std::io::ErrorKind::StorageFull => ErrorKind::ResourceExhausted,
                _ => ErrorKind::Internal,
            },
            Error::Config(_)
            | Error::InUse(_)
            | Error::InvalidValue { .. }
            | Error::DatetimeOutOfRange { .. }
            | Error::NotNullViolation { .. }
            | Error::CheckViolation { .. }
            | Error::BadCopyData { .. }
            | Error::ProviderData { .. }
            | Error::InvalidParameter(_)
            | Error::TableExists(_) => ErrorKind::InvalidInput,
            Error::TableNotFound(_) => ErrorKind::NotFound,
            Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::PermissionDenied(_) => ErrorKind::PermissionDenied,
            Error::Cancelled(_) => ErrorKind::Cancelled,
            Error::ResourceExhausted(_) => ErrorKind::ResourceExhausted,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// Build an [`Error::Io`] for `path`.
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Build an [`Error::ObjectStore`] for `location`.
    pub fn object_store(location: impl Into<String>, source: object_store::Error) -> Self {
        Error::ObjectStore {
            location: location.into(),
            source,
        }
    }
}

/// Classify a DataFusion error, looking through its context and shared wrappers.
pub fn classify_datafusion(e: &DataFusionError) -> ErrorKind {
    match e.find_root() {
        DataFusionError::SQL(..) | DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => {
            ErrorKind::InvalidInput
        }
        DataFusionError::NotImplemented(_) => ErrorKind::Unsupported,
        DataFusionError::ResourcesExhausted(_) => ErrorKind::ResourceExhausted,
        DataFusionError::External(inner) => match inner.downcast_ref::<Error>() {
            Some(err) => err.kind(),
            None => ErrorKind::Internal,
        },
        DataFusionError::Execution(_) => ErrorKind::InvalidInput,
        _ => ErrorKind::Internal,
    }
}

impl From<Error> for DataFusionError {
    fn from(e: Error) -> Self {
        match e {
            Error::DataFusion(inner) => inner,
            other => DataFusionError::External(Box::new(other)),
        }
    }
}

/// An Arrow error as an [`Error`] (through DataFusion's, which keeps the classification).
pub fn arrow_error(e: datafusion::arrow::error::ArrowError) -> Error {
    Error::DataFusion(DataFusionError::ArrowError(Box::new(e), None))
}
