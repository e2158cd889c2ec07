-- Reverts step "memberships-procedures" (SQL Server, UNTESTED): the runbook's partial rollback.
DROP PROCEDURE IF EXISTS dbo.LoginMembership;
DROP PROCEDURE IF EXISTS dbo.UpdateMembershipStatus;
DROP PROCEDURE IF EXISTS dbo.CreateMembership;
GO
