-- Reverts step "verification-flow-procedures" (SQL Server, UNTESTED): the runbook's partial rollback.
DROP PROCEDURE IF EXISTS dbo.CompleteVerificationFlow;
DROP PROCEDURE IF EXISTS dbo.StartVerificationFlow;
GO
