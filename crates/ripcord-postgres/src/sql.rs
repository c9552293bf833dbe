//! The SQL text and error helpers every module of the PostgreSQL engine shares: how an
//! identifier and a literal are quoted, how a client error becomes an [`EngineError`],
//! and the shape of an input the engine refuses.

use postgres::error::{ErrorPosition, SqlState};
use ripcord_core::EngineError;
use ripcord_core::engine::SqlError;
use ripcord_core::url::redact;

pub(crate) use ripcord_core::snapshot::quote_ident;

/// `text` as an SQL string literal (standard_conforming_strings, as every supported
/// server has it on).
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// What the engine refuses, with a hint that says what to do instead.
pub(crate) fn invalid(reason: String, hint: &str) -> EngineError {
    EngineError::Invalid {
        reason,
        hint: Some(hint.to_string()),
    }
}

/// Map a client error: server-reported errors keep their SQLSTATE and position; a
/// broken connection or server shutdown is [`EngineError::ConnectionLost`].
pub(crate) fn map_error(error: postgres::Error) -> EngineError {
    if let Some(db) = error.as_db_error() {
        let code = db.code();
        let lost = code.code().starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW;
        if lost {
            return EngineError::ConnectionLost {
                reason: db.message().to_string(),
            };
        }
        return EngineError::Sql(SqlError {
            message: db.message().to_string(),
            code: Some(code.code().to_string()),
            position: match db.position() {
                Some(ErrorPosition::Original(position)) => Some(*position as usize),
                _ => None,
            },
            detail: db.detail().map(String::from),
            hint: db.hint().map(String::from),
        });
    }
    // A closed connection or a broken socket is a lost connection; anything else the
    // driver says without the server (a value it cannot encode) is ripcord's fault.
    let io = std::error::Error::source(&error).is_some_and(|s| s.is::<std::io::Error>());
    if error.is_closed() || io || !error.to_string().contains("serializing") {
        return EngineError::ConnectionLost {
            reason: connect_reason(&error),
        };
    }
    EngineError::Driver {
        reason: redact(&error.to_string()),
    }
}

/// What a client error says, with the innermost cause when the driver wraps one.
pub(crate) fn connect_reason(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => db.message().to_string(),
        None => {
            let text = error.to_string();
            let mut source = std::error::Error::source(error);
            let mut detail = String::new();
            while let Some(s) = source {
                detail = s.to_string();
                source = s.source();
            }
            if detail.is_empty() || text.contains(&detail) {
                text
            } else {
                format!("{text}: {detail}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_embedded_quotes_by_doubling_them() {
        assert_eq!(literal("it's"), "'it''s'");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
