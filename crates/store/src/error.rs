//! The store's error type.

/// What went wrong in the store. Messages never contain a clear key or a connection URL.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed a statement, or could not be reached.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names no supported backend (the URL itself is not repeated: it may hold a password).
    #[error("unsupported database URL: expected sqlite:… or postgres://…")]
    UnsupportedUrl,
    /// No such key, user, team or membership.
    #[error("not found: {0}")]
    NotFound(String),
    /// A unique value (id, alias) is already taken.
    #[error("already exists: {0}")]
    Conflict(String),
    /// A value the caller passed is malformed (duration, day, JSON shape, …).
    #[error("invalid value: {0}")]
    Invalid(String),
    /// A stored value could not be decoded (e.g. corrupt JSON in a column).
    #[error("corrupt stored value in {column}: {detail}")]
    Corrupt {
        /// The column.
        column: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The spend writer could not reach the database; its records stay buffered (or spilled).
    #[error("database unreachable; records kept for later ({pending} in memory)")]
    Unavailable {
        /// Records still waiting in memory (more may be in the spill file).
        pending: u64,
    },
    /// The spend writer has been shut down.
    #[error("spend writer is shut down")]
    Closed,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            return Self::Conflict(db.constraint().unwrap_or("unique constraint").to_owned());
        }
        Self::Database(e)
    }
}

/// Shorthand for results of store operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
