-- Reverts step "deployment-validation" (SQLite).
DROP TRIGGER IF EXISTS ValidationGuard_DeploymentIncomplete;
DROP VIEW IF EXISTS DeploymentStatus;
