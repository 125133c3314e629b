-- Verification of a step (issue 14): captures, expectations and the analysis window, kept as
-- one validated JSON document next to the step's other JSON parts. Empty for older steps.
ALTER TABLE plan_steps ADD COLUMN verification_json JSONB NOT NULL DEFAULT '{}'::jsonb;
