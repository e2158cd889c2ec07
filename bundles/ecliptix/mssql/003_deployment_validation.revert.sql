-- Reverts step "deployment-validation" (SQL Server, UNTESTED).
DROP VIEW IF EXISTS dbo.DeploymentStatus;
GO
