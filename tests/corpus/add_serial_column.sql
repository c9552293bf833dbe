ALTER TABLE accounts ADD COLUMN seq serial;
