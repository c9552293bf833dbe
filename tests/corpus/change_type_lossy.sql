ALTER TABLE codes ALTER COLUMN code TYPE int USING code::int;
