-- Step outputs are data (issue 14): a tool call keeps its parsed JSON result next to its text.
-- Results up to 64 KiB live inline; larger ones are in the object store under result_ref.
-- input_json is the concrete input the call ran with, after capture templates were substituted.
ALTER TABLE tool_calls ADD COLUMN result_json JSONB;
ALTER TABLE tool_calls ADD COLUMN result_ref TEXT;
ALTER TABLE tool_calls ADD COLUMN input_json JSONB;

-- Verify steps that sample over an analysis window show `sampling` between samples and
-- `awaiting_decision` when the analysis was inconclusive and a person must continue or roll back.
ALTER TABLE execution_steps DROP CONSTRAINT execution_steps_status_check;
ALTER TABLE execution_steps ADD CONSTRAINT execution_steps_status_check CHECK (status IN
    ('pending','running','succeeded','failed','skipped','rolled_back','rollback_failed',
     'sampling','awaiting_decision'));
