-- Reverts step "core-functions" (SQL Server, UNTESTED): the runbook's partial rollback.
DROP PROCEDURE IF EXISTS dbo.RecordCircuitBreakerResult;
DROP PROCEDURE IF EXISTS dbo.GetCircuitBreakerState;
GO
