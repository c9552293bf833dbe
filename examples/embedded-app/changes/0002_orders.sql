-- requires: 0001_customers
-- ripcord:deploy
CREATE TABLE orders (
    id integer PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES customers (id),
    total_cents integer NOT NULL
);
CREATE INDEX orders_customer ON orders (customer_id);
-- ripcord:revert
DROP TABLE orders;
