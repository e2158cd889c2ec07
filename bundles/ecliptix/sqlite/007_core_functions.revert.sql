-- Reverts step "core-functions" (SQLite): uninstalls its procedures (the runbook's partial rollback).
DELETE FROM ProcedureCatalog WHERE StepName = 'core-functions';
DROP TRIGGER IF EXISTS ValidationGuard_InvalidCircuitName;
