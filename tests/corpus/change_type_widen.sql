ALTER TABLE accounts ALTER COLUMN tier TYPE bigint;
