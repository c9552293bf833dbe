//! What can go wrong talking to a target: the error every engine maps its native
//! errors into. A leaf module, so that the engine traits and the capability traits
//! (capture, snapshot, vault, fleet) both use it without importing each other.

use serde::Serialize;

use crate::lock::LockHolder;

/// An error the database reported for a statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SqlError {
    /// The database's message.
    pub message: String,
    /// SQLSTATE or the engine's error code.
    pub code: Option<String>,
    /// 1-based character position in the statement, when the engine reports one.
    pub position: Option<usize>,
    /// The database's detail line.
    pub detail: Option<String>,
    /// The database's hint.
    pub hint: Option<String>,
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        match &self.code {
            Some(code)
                if code.len() == 5
                    && code
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase()) =>
            {
                write!(f, " (SQLSTATE {code})")?
            }
            Some(code) => write!(f, " ({code})")?,
            None => {}
        }
        Ok(())
    }
}

/// What can go wrong talking to a target.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The URL itself is wrong: nothing was tried.
    #[error("{target} is not a usable URL: {reason}")]
    BadUrl {
        /// The URL, password hidden (`(empty)` when empty).
        target: String,
        /// What is wrong with it, naming the part.
        reason: String,
        /// How to write it.
        hint: String,
    },
    /// The target cannot be reached or refused the connection.
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        /// The target, password hidden.
        target: String,
        /// Why.
        reason: String,
    },
    /// A statement failed.
    #[error("{0}")]
    Sql(SqlError),
    /// The connection broke in the middle of the work.
    #[error("lost the connection to the database: {reason}")]
    ConnectionLost {
        /// Why.
        reason: String,
    },
    /// Another process holds the target's lock.
    #[error("another ripcord holds the target's lock{}", holder.as_ref().map(|h| format!(": {h}")).unwrap_or_default())]
    LockBusy {
        /// Who, when known.
        holder: Option<LockHolder>,
    },
    /// The ledger was written by a newer ripcord.
    #[error("the ledger has version {found}, newer than this ripcord understands ({supported})")]
    LedgerTooNew {
        /// Version found.
        found: u32,
        /// Version this build knows.
        supported: u32,
    },
    /// The request cannot be carried out as asked (no such table, no usable key, …);
    /// nothing was changed.
    #[error("{reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
        /// What to do.
        hint: Option<String>,
    },
    /// The ledger holds something this build cannot read.
    #[error("the ledger is damaged: {reason}")]
    Ledger {
        /// What is wrong.
        reason: String,
    },
    /// The database driver refused a request before sending it (a value of the wrong
    /// type): a fault of ripcord's, not of the database or the connection.
    #[error("the database driver refused ripcord's request: {reason}")]
    Driver {
        /// What the driver said.
        reason: String,
    },
}
