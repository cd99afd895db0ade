//! The error type of the database layer.

use super::Backend;

/// An error from the database layer. Every message names the operation that failed and
/// its cause; URLs in messages are redacted (`user:***@host`), never the password.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL is not `sqlite:…` or `postgres://…`, or cannot be parsed.
    #[error("invalid database URL {url}: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// Opening the pool (or preparing the SQLite file's directory) failed.
    #[error("cannot connect to {backend} database {url}: {cause}")]
    Connect {
        backend: Backend,
        url: String,
        cause: String,
    },

    /// Applying the embedded migrations failed.
    #[error("migrating {backend} database failed: {source}")]
    Migrate {
        backend: Backend,
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    /// A statement violated a constraint (unique key, foreign key, check, not null).
    #[error("{op} failed: constraint violated: {cause}")]
    Constraint { op: &'static str, cause: String },

    /// The row an update refers to does not exist.
    #[error("{op} failed: {what} not found")]
    NotFound { op: &'static str, what: String },

    /// The caller passed a value the database layer refuses (documented per function).
    #[error("{op} failed: invalid input: {reason}")]
    InvalidInput { op: &'static str, reason: String },

    /// The write contradicts what is stored (documented per function), e.g. a published
    /// `name@version` given other bytes.
    #[error("{op} failed: conflict: {reason}")]
    Conflict { op: &'static str, reason: String },

    /// A stored value could not be turned back into its domain type.
    #[error("{op} failed: stored data is invalid: {reason}")]
    Corrupt { op: &'static str, reason: String },

    /// An error of a synchronous SQLite connection (`db::direct`) or of the blocking task
    /// that ran it.
    #[error("{op} failed: {cause}")]
    Sqlite { op: &'static str, cause: String },

    /// Any other database error.
    #[error("{op} failed: {source}")]
    Query {
        op: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

impl DbError {
    /// Classify a sqlx error raised while running `op`.
    pub(crate) fn query(op: &'static str, source: sqlx::Error) -> DbError {
        if let sqlx::Error::Database(db) = &source {
            use sqlx::error::ErrorKind;
            match db.kind() {
                ErrorKind::UniqueViolation
                | ErrorKind::ForeignKeyViolation
                | ErrorKind::NotNullViolation
                | ErrorKind::CheckViolation => {
                    return DbError::Constraint {
                        op,
                        cause: db.message().to_string(),
                    }
                }
                _ => {}
            }
        }
        DbError::Query { op, source }
    }

    /// True for [`DbError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, DbError::NotFound { .. })
    }

    /// True for [`DbError::Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, DbError::Conflict { .. })
    }

    /// True for [`DbError::Constraint`].
    pub fn is_constraint(&self) -> bool {
        matches!(self, DbError::Constraint { .. })
    }
}

/// `.map_err(q("op"))` shorthand.
pub(crate) fn q(op: &'static str) -> impl FnOnce(sqlx::Error) -> DbError {
    move |e| DbError::query(op, e)
}
