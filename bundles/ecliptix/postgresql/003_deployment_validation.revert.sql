-- Reverts step "deployment-validation" (PostgreSQL).
DROP VIEW IF EXISTS dbo.DeploymentStatus;
