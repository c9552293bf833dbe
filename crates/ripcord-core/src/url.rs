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

/// Connection parameters the PostgreSQL driver reads from a URL.
const PG_PARAMS: &[&str] = &[
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "sslmode",
    "sslnegotiation",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// What is wrong with a `postgres://` URL the driver refused, naming the part: a port
/// that is no number or out of range, an unknown parameter. `None` when none of those.
pub fn pg_url_problem(url: &str) -> Option<String> {
    let parts = PgUrl::parse(url)?;
    for host in parts.host.split(',') {
        let port = match host.rsplit_once(':') {
            // An IPv6 address in brackets has colons of its own.
            Some((name, port)) if !port.contains(']') && !name.is_empty() => port,
            _ => continue,
        };
        match port.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => {}
            Ok(n) => return Some(format!("port {n} is out of range (1 to 65535)")),
            Err(_) => return Some(format!("port `{port}` is not a number")),
        }
    }
    for (key, _) in parts.params() {
        if !PG_PARAMS.contains(&key) {
            let hint = crate::suggest::did_you_mean(key, PG_PARAMS.iter().copied())
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            return Some(format!(
                "the parameter `{key}` is not a connection setting{hint}"
            ));
        }
    }
    None
}

/// A `postgres://` URL cut into its parts exactly where the connection parser
/// (tokio-postgres) cuts it: the credentials run to the first `@` (a password may hold
/// `#`, `?` or `/` unencoded), the host to the first `/` or `?` after them, the
/// database name to the first `?`. Redaction and rewriting use these parts, so what is
/// hidden is exactly what the driver sends as the password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgUrl<'a> {
    /// `postgres://` or `postgresql://`.
    pub scheme: &'a str,
    /// The user, as written (percent-encoded).
    pub user: Option<&'a str>,
    /// The password, as written.
    pub password: Option<&'a str>,
    /// Host(s) and port(s).
    pub host: &'a str,
    /// The database name, when the URL has a path.
    pub database: Option<&'a str>,
    /// The parameters after `?`.
    pub query: Option<&'a str>,
}

impl<'a> PgUrl<'a> {
    /// Cut `url` as the driver does; `None` when it has no `scheme://`.
    pub fn parse(url: &'a str) -> Option<PgUrl<'a>> {
        PgUrl::cut(url, false)
    }

    /// Cut `url` for hiding its password: like [`PgUrl::parse`], except that an `@`
    /// left in the host part (a password holding an unencoded `@`, which the driver
    /// cannot read either) still belongs to the credentials.
    fn parse_for_redaction(url: &'a str) -> Option<PgUrl<'a>> {
        PgUrl::cut(url, true)
    }

    fn cut(url: &'a str, greedy: bool) -> Option<PgUrl<'a>> {
        let scheme_len = url.find("://").filter(|&i| {
            i > 0
                && url[..i]
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
        })? + 3;
        let (scheme, mut rest) = url.split_at(scheme_len);
        let (mut user, mut password) = (None, None);
        let mut credentials_end = rest.find('@');
        while greedy && let Some(at) = credentials_end {
            let after = &rest[at + 1..];
            let host = &after[..after.find(['/', '?']).unwrap_or(after.len())];
            match host.rfind('@') {
                Some(more) => credentials_end = Some(at + 1 + more),
                None => break,
            }
        }
        if let Some(at) = credentials_end {
            let credentials = &rest[..at];
            match credentials.split_once(':') {
                Some((u, p)) => {
                    user = Some(u);
                    password = Some(p);
                }
                None => user = Some(credentials),
            }
            rest = &rest[at + 1..];
        }
        let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let host = &rest[..host_end];
        rest = &rest[host_end..];
        let mut database = None;
        if let Some(path) = rest.strip_prefix('/') {
            let end = path.find('?').unwrap_or(path.len());
            database = Some(&path[..end]);
            rest = &path[end..];
        }
        let query = rest.strip_prefix('?');
        Some(PgUrl {
            scheme,
            user,
            password,
            host,
            database,
            query,
        })
    }

    /// The parameters as `(key, value)` pairs, as written.
    pub fn params(&self) -> Vec<(&'a str, &'a str)> {
        self.query
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .collect()
    }

    /// Put the URL back together, with `database` and `query` as given.
    pub fn render(
        &self,
        password: Option<&str>,
        database: Option<&str>,
        query: Option<&str>,
    ) -> String {
        let mut out = String::from(self.scheme);
        if let Some(user) = self.user {
            out.push_str(user);
            if let Some(password) = password {
                out.push(':');
                out.push_str(password);
            }
            out.push('@');
        }
        out.push_str(self.host);
        if let Some(database) = database {
            out.push('/');
            out.push_str(database);
        }
        if let Some(query) = query {
            out.push('?');
            out.push_str(query);
        }
        out
    }
}

/// Parameters that carry secrets.
fn is_secret_param(key: &str) -> bool {
    ["password", "sslpassword"]
        .iter()
        .any(|secret| key.eq_ignore_ascii_case(secret))
}

/// `url` with any password replaced by `***`, safe to print and to store.
pub fn redact(url: &str) -> String {
    let Some(parts) = PgUrl::parse_for_redaction(url.trim()) else {
        return url.to_string();
    };
    let query = parts.query.map(|_| {
        parts
            .params()
            .into_iter()
            .map(|(key, value)| {
                if is_secret_param(key) {
                    format!("{key}=***")
                } else if value.is_empty() {
                    key.to_string()
                } else {
                    format!("{key}={value}")
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    });
    parts.render(
        parts.password.map(|_| "***"),
        parts.database,
        query.as_deref(),
    )
}

/// `url` (a `postgres://` URL) pointing at database `name` instead of its own.
pub fn with_database(url: &str, name: &str) -> String {
    match PgUrl::parse(url) {
        Some(parts) => parts.render(parts.password, Some(name), parts.query),
        None => url.to_string(),
    }
}

/// True when `url` carries a password (which must not live in ripcord.toml).
pub fn has_password(url: &str) -> bool {
    PgUrl::parse_for_redaction(url.trim()).is_some_and(|parts| {
        parts.password.is_some() || parts.params().iter().any(|(key, _)| is_secret_param(key))
    })
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

    #[test]
    fn passwords_with_url_delimiters_are_hidden_whole() {
        for password in [
            "pa#ss",
            "pa?ss",
            "pa/ss",
            "a#b?c/d",
            "x?password=y",
            "#",
            "?",
            "/",
        ] {
            let url = format!("postgres://app:{password}@db.example.com:5432/shop?sslmode=require");
            let shown = redact(&url);
            assert_eq!(
                shown, "postgres://app:***@db.example.com:5432/shop?sslmode=require",
                "{password}"
            );
            assert!(has_password(&url));
            assert_eq!(
                with_database(&url, "scratch"),
                format!("postgres://app:{password}@db.example.com:5432/scratch?sslmode=require")
            );
        }
        assert_eq!(
            redact("postgres://db/shop?user=a&sslpassword=k#ey&password=p/w?x"),
            "postgres://db/shop?user=a&sslpassword=***&password=***"
        );
    }

    proptest! {
        #[test]
        fn redacted_urls_never_contain_the_password(user in "[a-z]{1,8}", password in "[A-Za-z0-9!$%]{6,16}", host in "[a-z]{1,8}") {
            let url = format!("postgres://{user}:{password}@{host}:5432/db");
            prop_assert!(!redact(&url).contains(&password));
            let url = format!("postgres://{user}:{password}#?/{password}@{host}:5432/db?x=1");
            prop_assert!(!redact(&url).contains(&password));
            let url = format!("postgres://{host}/db?password={password}");
            prop_assert!(!redact(&url).contains(&password));
        }
    }
}
