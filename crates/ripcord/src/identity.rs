//! Who runs ripcord and where: stamped on ledger rows, the lock and audit events.

use crate::env_vars;

/// The actor when nothing names one.
const UNKNOWN: &str = "unknown";

/// The acting user and host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `RIPCORD_ACTOR`, else `USER`, else `LOGNAME`, else the operating-system user of
    /// the process, else the database role (see [`Identity::or_role`]), else `unknown`.
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
                .or_else(|| whoami::username().ok().filter(|u| !u.trim().is_empty()))
                .unwrap_or_else(|| UNKNOWN.into()),
            host: non_empty(env_vars::RIPCORD_HOST)
                .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned()),
        }
    }
}

impl Identity {
    /// Fall back to the database role when neither the environment nor the operating
    /// system names the actor.
    pub fn or_role(mut self, role: impl FnOnce() -> Option<String>) -> Identity {
        if self.actor == UNKNOWN
            && let Some(role) = role().filter(|r| !r.trim().is_empty())
        {
            self.actor = role;
        }
        self
    }
}
