-- Reverts step "auth-context-procedures" (SQLite): uninstalls its procedures (the runbook's partial rollback).
DELETE FROM ProcedureCatalog WHERE StepName = 'auth-context-procedures';
DROP TRIGGER IF EXISTS ValidationGuard_MembershipNotActive;
DROP TRIGGER IF EXISTS ValidationGuard_InvalidValidityMinutes;
