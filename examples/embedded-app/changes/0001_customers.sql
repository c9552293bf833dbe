-- ripcord:deploy
CREATE TABLE customers (id integer PRIMARY KEY, email text NOT NULL);
-- ripcord:revert
DROP TABLE customers;
-- ripcord:verify
SELECT id, email FROM customers WHERE 1 = 0;
