DO $$ BEGIN UPDATE accounts SET plan = 'free' WHERE plan IS NULL; END $$;
