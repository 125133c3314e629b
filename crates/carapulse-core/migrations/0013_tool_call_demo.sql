-- A tool call that ran one of the demo CLIs (tool_router.demo_cli_dir: the recording fakes of
-- `dev-up.sh --demo`) is marked, so the API, CLI and UI can say that nothing real was changed.
ALTER TABLE tool_calls ADD COLUMN demo BOOLEAN NOT NULL DEFAULT false;
