-- Phase "infrastructure", step "deployment-validation" (SQLite): the runbook's
-- DeploymentScript.sql, the orchestrated validation. DeploymentStatus lists every object and
-- configuration key the deployment needs and whether it is present (also handy for monitoring);
-- the step fails, and is rolled back, when anything is missing.

CREATE VIEW DeploymentStatus AS
WITH Required (ObjectType, ObjectName) AS (
    VALUES ('table', 'Memberships'), ('table', 'AuthenticationContexts'),
           ('table', 'LoginAttempts'), ('table', 'VerificationFlows'),
           ('table', 'SystemConfiguration'), ('table', 'AuditLog'), ('table', 'ErrorLog'),
           ('table', 'PerformanceMetrics'), ('table', 'CircuitBreakerState'),
           ('table', 'ValidationGuard'), ('table', 'OperationState'), ('table', 'ProcedureCatalog'),
           ('trigger', 'SystemConfiguration_Audit')
)
SELECT r.ObjectType, r.ObjectName,
       EXISTS (SELECT 1 FROM sqlite_master m WHERE m.type = r.ObjectType AND m.name = r.ObjectName) AS IsPresent
FROM Required r
UNION ALL
SELECT 'procedure', p.Name,
       EXISTS (SELECT 1 FROM ProcedureCatalog c WHERE c.ProcedureName = p.Name)
FROM (SELECT 'GetConfigValue' AS Name UNION ALL SELECT 'SetConfigValue'
      UNION ALL SELECT 'ValidatePhoneNumber' UNION ALL SELECT 'ValidateGuid'
      UNION ALL SELECT 'CleanupAuditLogs' UNION ALL SELECT 'CleanupExpiredContexts') p
UNION ALL
SELECT 'configuration', k.ConfigKey,
       EXISTS (SELECT 1 FROM SystemConfiguration s WHERE s.ConfigKey = k.ConfigKey)
FROM (SELECT 'Authentication.MaxFailedAttempts' AS ConfigKey
      UNION ALL SELECT 'Authentication.LockoutDurationMinutes' UNION ALL SELECT 'OTP.MaxAttempts'
      UNION ALL SELECT 'Database.CleanupBatchSize' UNION ALL SELECT 'Monitoring.EnableMetrics'
      UNION ALL SELECT 'Audit.RetentionDays' UNION ALL SELECT 'Audit.LogValidations') k;

CREATE TRIGGER ValidationGuard_DeploymentIncomplete BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'DEPLOYMENT_INCOMPLETE'
BEGIN SELECT RAISE(ABORT, 'Deployment validation failed: production infrastructure is incomplete (SELECT * FROM DeploymentStatus WHERE IsPresent = 0)'); END;

-- The assertion: aborts the step when any required object or key is missing.
INSERT INTO ValidationGuard (Code)
SELECT 'DEPLOYMENT_INCOMPLETE' WHERE EXISTS (SELECT 1 FROM DeploymentStatus WHERE IsPresent = 0);
