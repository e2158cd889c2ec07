-- Reverts step "verification-flow-procedures" (SQLite): uninstalls its procedures (the runbook's partial rollback).
DELETE FROM ProcedureCatalog WHERE StepName = 'verification-flow-procedures';
DROP TRIGGER IF EXISTS ValidationGuard_InvalidPurpose;
DROP TRIGGER IF EXISTS ValidationGuard_InvalidOtpHash;
DROP TRIGGER IF EXISTS ValidationGuard_InvalidValiditySeconds;
DROP TRIGGER IF EXISTS ValidationGuard_FlowNotFound;
