CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_account_idx ON orders (account_id);
