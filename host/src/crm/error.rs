//! [`CrmError`]: why a lead or score operation was refused or failed. Each door maps it
//! its own way — the HTTP API to problem+json (400/422, 404, 503), the MCP server to a
//! tool error whose text is the message.

use crate::db::DbError;

#[derive(Debug, thiserror::Error)]
pub enum CrmError {
    /// The request is not acceptable as given; the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// The named lead (or other record) does not exist.
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl CrmError {
    pub(crate) fn invalid(m: impl Into<String>) -> Self {
        Self::Invalid(m.into())
    }

    pub(crate) fn no_lead(id: &str) -> Self {
        Self::NotFound(format!("no lead {id:?}"))
    }
}
