-- requires: 0001_accounts
-- ripcord:deploy
ALTER TABLE accounts ADD COLUMN balance_cents bigint NOT NULL DEFAULT 0;
