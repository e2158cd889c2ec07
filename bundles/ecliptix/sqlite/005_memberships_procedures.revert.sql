-- Reverts step "memberships-procedures" (SQLite): uninstalls its procedures (the runbook's partial rollback).
DELETE FROM ProcedureCatalog WHERE StepName = 'memberships-procedures';
DROP TRIGGER IF EXISTS ValidationGuard_InvalidSecureKey;
DROP TRIGGER IF EXISTS ValidationGuard_PhoneAlreadyRegistered;
DROP TRIGGER IF EXISTS ValidationGuard_MembershipNotFound;
DROP TRIGGER IF EXISTS ValidationGuard_InvalidStatus;
