CREATE VIEW active_accounts AS SELECT id, email FROM accounts WHERE plan <> 'closed';
