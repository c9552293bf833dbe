//! Target URLs: which engine a URL names, and its password-free form for messages.

use std::path::PathBuf;

/// What a target URL points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetUrl {
    /// A PostgreSQL connection URL (`postgres://` or `postgresql://`), kept verbatim.
    Postgres(String),
    /// A SQLite database file (`sqlite://path`, `sqlite:path`).
    Sqlite(PathBuf),
}

/// A URL ripcord cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported target URL `{redacted}`: expected postgres://… or sqlite://…")]
pub struct UrlError {
    /// The URL with any password hidden.
    pub redacted: String,
}

impl TargetUrl {
    /// Recognize the engine of `url`.
    pub fn parse(url: &str) -> Result<TargetUrl, UrlError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(TargetUrl::Postgres(url.to_string()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .filter(|p| !p.is_empty());
        match path {
            Some(path) => Ok(TargetUrl::Sqlite(PathBuf::from(path))),
            None => Err(UrlError {
                redacted: redact(url),
            }),
        }
    }
}

/// `url` with any password replaced by `***`, safe to print.
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let authority_start = scheme_end + 3;
        let authority_end = out[authority_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| authority_start + i);
        if let Some(at) = out[authority_start..authority_end].rfind('@') {
            let userinfo = authority_start..authority_start + at;
            if let Some(colon) = out[userinfo.clone()].find(':') {
                out.replace_range(userinfo.start + colon + 1..userinfo.end, "***");
            }
        }
    }
    // libpq also takes the password as a query parameter.
    let lower = out.to_ascii_lowercase();
    if let Some(pos) = lower.find("password=") {
        let value_start = pos + "password=".len();
        let value_end = out[value_start..]
            .find('&')
            .map_or(out.len(), |i| value_start + i);
        out.replace_range(value_start..value_end, "***");
    }
    out
}

/// `url` (a `postgres://` URL) pointing at database `name` instead of its own.
pub fn with_database(url: &str, name: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let authority_start = scheme_end + 3;
    let path_start = url[authority_start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| authority_start + i);
    let rest = &url[path_start..];
    let query = rest.find(['?', '#']).map_or("", |i| &rest[i..]);
    format!("{}/{name}{query}", &url[..path_start])
}

/// True when `url` carries a password (which must not live in ripcord.toml).
pub fn has_password(url: &str) -> bool {
    redact(url) != url
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn recognizes_engines() {
        assert_eq!(
            TargetUrl::parse("sqlite://dev.db").unwrap(),
            TargetUrl::Sqlite("dev.db".into())
        );
        assert_eq!(
            TargetUrl::parse("sqlite:///tmp/x.db").unwrap(),
            TargetUrl::Sqlite("/tmp/x.db".into())
        );
        assert!(matches!(
            TargetUrl::parse("postgresql://h/db"),
            Ok(TargetUrl::Postgres(_))
        ));
        let err = TargetUrl::parse("mysql://u:secret@h/db").unwrap_err();
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://app:s3cr3t@db:5432/shop"),
            "postgres://app:***@db:5432/shop"
        );
        assert_eq!(redact("postgres://app@db/shop"), "postgres://app@db/shop");
        assert_eq!(
            redact("postgres://db/shop?user=a&password=x&sslmode=require"),
            "postgres://db/shop?user=a&password=***&sslmode=require"
        );
        assert_eq!(redact("postgres://a:p@ss@db/x"), "postgres://a:***@db/x");
        assert!(has_password("postgres://a:b@h/d"));
        assert!(!has_password("postgres://a@h/d"));
    }

    #[test]
    fn swaps_the_database_keeping_everything_else() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/shop?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
        assert_eq!(
            with_database("postgresql://h:1/", "x"),
            "postgresql://h:1/x"
        );
    }

    proptest! {
        #[test]
        fn redacted_urls_never_contain_the_password(user in "[a-z]{1,8}", password in "[A-Za-z0-9!$%]{6,16}", host in "[a-z]{1,8}") {
            let url = format!("postgres://{user}:{password}@{host}:5432/db");
            prop_assert!(!redact(&url).contains(&password));
            let url = format!("postgres://{host}/db?password={password}");
            prop_assert!(!redact(&url).contains(&password));
        }
    }
}
