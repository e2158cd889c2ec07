-- Reverts step "verification-flow-procedures" (PostgreSQL): the runbook's partial rollback.
DROP FUNCTION IF EXISTS dbo.CompleteVerificationFlow(text, text);
DROP FUNCTION IF EXISTS dbo.StartVerificationFlow(text, text, text, integer);
