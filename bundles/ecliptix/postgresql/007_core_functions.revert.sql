-- Reverts step "core-functions" (PostgreSQL): the runbook's partial rollback.
DROP FUNCTION IF EXISTS dbo.RecordCircuitBreakerResult(text, boolean);
DROP FUNCTION IF EXISTS dbo.GetCircuitBreakerState(text);
