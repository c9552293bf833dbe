ALTER TABLE accounts ADD CONSTRAINT plan_known CHECK (plan IN ('free', 'pro'));
