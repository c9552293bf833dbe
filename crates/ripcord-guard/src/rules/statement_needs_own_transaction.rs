//! `statement-needs-own-transaction`: statements PostgreSQL refuses inside a
//! transaction block (`CREATE/DROP INDEX CONCURRENTLY`, `REINDEX … CONCURRENTLY`,
//! `VACUUM`, `CREATE/DROP DATABASE`, `ALTER SYSTEM`, `DETACH PARTITION … CONCURRENTLY`)
//! in a change that runs in one. squawk reports this only when other statements share
//! the file; ripcord knows how the change runs.

use ripcord_core::splitter::postgres_refuses_in_transaction as refused_in_a_transaction;

/// The finding's message, when `statement` cannot run in the change's transaction.
pub(crate) fn check(statement: &str, in_transaction: bool) -> Option<String> {
    (in_transaction && refused_in_a_transaction(statement)).then(|| {
        "PostgreSQL refuses this statement inside a transaction, and this change runs in one".into()
    })
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn concurrently_needs_its_own_transaction() {
        assert!(check("CREATE INDEX CONCURRENTLY i ON t (a)", true).is_some());
        assert!(check("REINDEX INDEX CONCURRENTLY i", true).is_some());
        assert!(check("VACUUM t", true).is_some());
    }

    #[test]
    fn outside_a_transaction_or_without_concurrently_is_fine() {
        assert!(check("CREATE INDEX CONCURRENTLY i ON t (a)", false).is_none());
        assert!(check("CREATE INDEX i ON t (a)", true).is_none());
    }
}
