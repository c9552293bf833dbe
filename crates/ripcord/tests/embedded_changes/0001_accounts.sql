-- ripcord:deploy
CREATE TABLE accounts (id integer PRIMARY KEY, name text NOT NULL);
INSERT INTO accounts VALUES (1, 'ada');
-- ripcord:revert
DROP TABLE accounts;
