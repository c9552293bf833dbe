//! Who runs ripcord and where: stamped on ledger rows, the lock and audit events.

use crate::env_vars;

/// The acting user and host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `RIPCORD_ACTOR`, else `USER`, else `unknown`.
    pub actor: String,
    /// `RIPCORD_HOST`, else the machine's host name.
    pub host: String,
}

impl Identity {
    /// Read from the environment.
    pub fn from_env() -> Identity {
        let non_empty = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Identity {
            actor: non_empty(env_vars::RIPCORD_ACTOR)
                .or_else(|| non_empty(env_vars::USER))
                .or_else(|| non_empty("LOGNAME"))
                .unwrap_or_else(|| "unknown".into()),
            host: non_empty(env_vars::RIPCORD_HOST)
                .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned()),
        }
    }
}
