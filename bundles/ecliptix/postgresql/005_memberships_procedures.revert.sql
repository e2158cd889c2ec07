-- Reverts step "memberships-procedures" (PostgreSQL): the runbook's partial rollback.
DROP FUNCTION IF EXISTS dbo.LoginMembership(text, text);
DROP FUNCTION IF EXISTS dbo.UpdateMembershipStatus(text, text);
DROP FUNCTION IF EXISTS dbo.CreateMembership(text, text);
