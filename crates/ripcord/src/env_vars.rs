//! Every environment variable ripcord reads, in one place.

/// URL of an ad-hoc target (after `--url`).
pub const RIPCORD_URL: &str = "RIPCORD_URL";
/// Fallback URL when no target is named or configured.
pub const DATABASE_URL: &str = "DATABASE_URL";
/// Who is acting, recorded in the ledger and audit chain (default: `USER`).
pub const RIPCORD_ACTOR: &str = "RIPCORD_ACTOR";
/// The host name recorded in the ledger and lock (default: the machine's).
pub const RIPCORD_HOST: &str = "RIPCORD_HOST";
/// Named failpoints for crash tests: `name[#n][=abort|sleep(ms)]`, comma-separated.
pub const RIPCORD_FAILPOINT: &str = "RIPCORD_FAILPOINT";
/// The login name, used when `RIPCORD_ACTOR` is unset.
pub const USER: &str = "USER";
/// Disables colors when set.
pub const NO_COLOR: &str = "NO_COLOR";
