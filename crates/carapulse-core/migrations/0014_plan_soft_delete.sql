-- DELETE /v1/plans/{id}: a plan never executed can be withdrawn. The row stays (its audit events
-- and approvals keep pointing at it) but every read and list leaves it out.
ALTER TABLE plans ADD COLUMN deleted_at TIMESTAMPTZ;
ALTER TABLE plans ADD COLUMN deleted_by TEXT;
