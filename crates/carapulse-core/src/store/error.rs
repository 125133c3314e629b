//! Store errors, sorted by what a caller should do about them.

/// What went wrong talking to Postgres.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist for this tenant.
    #[error("not found")]
    NotFound,
    /// The change conflicts with the current state (e.g. a plan already decided).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or is overloaded; retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The request is valid but the object is not in a state that allows it.
    #[error("{0}")]
    Precondition(String),
    /// Postgres refused a value the edge let through (a NUL, an invalid encoding, an oversized
    /// string): the caller's input is at fault, never the server.
    #[error("invalid value: {0}")]
    InvalidValue(String),
    /// A page cursor that this list did not hand out (another list's, or edited).
    #[error("invalid cursor: {0}")]
    InvalidCursor(String),
    /// Stored data failed an integrity check (e.g. a plan edited after approval).
    #[error("{0}")]
    Integrity(String),
    /// A stored value no longer parses into the model (manual edits, schema drift).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Database(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable(err.to_string())
            }
            sqlx::Error::Database(ref db) if db.code().as_deref() == Some("57P01") => {
                Self::Unavailable(err.to_string())
            }
            // 22021 invalid byte sequence (NUL in text), 22P05 untranslatable character (\u0000
            // in jsonb), 22001 string too long, 54000 program limit (e.g. an index row too big).
            sqlx::Error::Database(ref db)
                if matches!(
                    db.code().as_deref(),
                    Some("22021" | "22P05" | "22001" | "54000")
                ) =>
            {
                Self::InvalidValue(db.message().to_owned())
            }
            other => Self::Database(other),
        }
    }
}

impl From<crate::model::ModelError> for StoreError {
    fn from(err: crate::model::ModelError) -> Self {
        Self::Corrupt(err.to_string())
    }
}

impl StoreError {
    /// Whether the error is about one request's own data or state (so a batch answers that
    /// request with it and goes on), rather than about the database or the transaction.
    pub fn is_about_the_request(&self) -> bool {
        matches!(
            self,
            Self::NotFound
                | Self::Conflict(_)
                | Self::Precondition(_)
                | Self::InvalidValue(_)
                | Self::InvalidCursor(_)
                | Self::Integrity(_)
                | Self::Corrupt(_)
        )
    }

    /// Whether the error is a unique-constraint violation on `constraint`.
    pub(crate) fn is_unique_violation(err: &sqlx::Error, constraint: &str) -> bool {
        match err {
            sqlx::Error::Database(db) => {
                db.code().as_deref() == Some("23505") && db.constraint() == Some(constraint)
            }
            _ => false,
        }
    }
}
