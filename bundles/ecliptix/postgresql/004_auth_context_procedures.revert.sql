-- Reverts step "auth-context-procedures" (PostgreSQL): the runbook's partial rollback.
DROP FUNCTION IF EXISTS dbo.DeactivateAuthenticationContext(text);
DROP FUNCTION IF EXISTS dbo.ValidateAuthenticationContext(text);
DROP FUNCTION IF EXISTS dbo.CreateAuthenticationContext(text, integer);
