ALTER TABLE accounts ADD CONSTRAINT plan_known CHECK (plan IN ('free', 'pro')) NOT VALID;
ALTER TABLE accounts VALIDATE CONSTRAINT plan_known;
