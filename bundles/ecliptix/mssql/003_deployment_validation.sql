-- Phase "infrastructure", step "deployment-validation" (SQL Server, UNTESTED): the runbook's
-- DeploymentScript.sql, the orchestrated validation. DeploymentStatus lists every object and
-- configuration key the deployment needs and whether it is present; the second batch THROWs, failing
-- the step, when anything is missing.

CREATE OR ALTER VIEW dbo.DeploymentStatus
AS
SELECT r.ObjectType, r.ObjectName,
       CASE
           WHEN r.ObjectType = N'table' AND OBJECT_ID(N'dbo.' + r.ObjectName, N'U') IS NOT NULL THEN 1
           WHEN r.ObjectType = N'procedure' AND OBJECT_ID(N'dbo.' + r.ObjectName, N'P') IS NOT NULL THEN 1
           WHEN r.ObjectType = N'trigger' AND OBJECT_ID(N'dbo.' + r.ObjectName, N'TR') IS NOT NULL THEN 1
           WHEN r.ObjectType = N'configuration'
                AND EXISTS (SELECT 1 FROM dbo.SystemConfiguration c WHERE c.ConfigKey = r.ObjectName) THEN 1
           ELSE 0
       END AS IsPresent
FROM (VALUES
    (N'table', N'Memberships'), (N'table', N'AuthenticationContexts'), (N'table', N'LoginAttempts'),
    (N'table', N'VerificationFlows'), (N'table', N'SystemConfiguration'), (N'table', N'AuditLog'),
    (N'table', N'ErrorLog'), (N'table', N'PerformanceMetrics'), (N'table', N'CircuitBreakerState'),
    (N'trigger', N'SystemConfiguration_Audit'),
    (N'procedure', N'GetConfigValue'), (N'procedure', N'SetConfigValue'), (N'procedure', N'ValidatePhoneNumber'),
    (N'procedure', N'ValidateGuid'), (N'procedure', N'CleanupAuditLogs'), (N'procedure', N'CleanupExpiredContexts'),
    (N'configuration', N'Authentication.MaxFailedAttempts'), (N'configuration', N'Authentication.LockoutDurationMinutes'),
    (N'configuration', N'OTP.MaxAttempts'), (N'configuration', N'Database.CleanupBatchSize'),
    (N'configuration', N'Monitoring.EnableMetrics'), (N'configuration', N'Audit.RetentionDays'),
    (N'configuration', N'Audit.LogValidations')
) AS r (ObjectType, ObjectName);
GO

DECLARE @Missing NVARCHAR(2048);
SELECT @Missing = STRING_AGG(ObjectType + N' ' + ObjectName, N', ') FROM dbo.DeploymentStatus WHERE IsPresent = 0;
IF @Missing IS NOT NULL
BEGIN
    SET @Missing = N'Deployment validation failed: production infrastructure is incomplete (missing: ' + @Missing + N')';
    THROW 50100, @Missing, 1;
END
PRINT N'✅ Production infrastructure tables and procedures created successfully.';
PRINT N'   - System Configuration Management';
PRINT N'   - Comprehensive Audit and Logging';
PRINT N'   - Input Validation Procedures';
PRINT N'   - Circuit Breaker Infrastructure';
GO
