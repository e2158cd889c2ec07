-- Reverts step "auth-context-procedures" (SQL Server, UNTESTED): the runbook's partial rollback.
DROP PROCEDURE IF EXISTS dbo.DeactivateAuthenticationContext;
DROP PROCEDURE IF EXISTS dbo.ValidateAuthenticationContext;
DROP PROCEDURE IF EXISTS dbo.CreateAuthenticationContext;
GO
