-- Reverts step "production-infrastructure" (PostgreSQL): drops its functions and tables (with the
-- audit and metrics history). Schema dbo stays; the baseline's revert drops it when empty.
DROP FUNCTION IF EXISTS dbo.CleanupExpiredContexts(integer, integer);
DROP FUNCTION IF EXISTS dbo.CleanupAuditLogs(integer, integer);
DROP FUNCTION IF EXISTS dbo.ValidateGuid(text);
DROP FUNCTION IF EXISTS dbo.ValidatePhoneNumber(text);
DROP FUNCTION IF EXISTS dbo.SetConfigValue(text, text);
DROP FUNCTION IF EXISTS dbo.GetConfigValue(text);
DROP FUNCTION IF EXISTS dbo.RecordPerformance(text, timestamptz, integer);
DROP FUNCTION IF EXISTS dbo.IsValidGuid(text);
DROP FUNCTION IF EXISTS dbo.IsValidPhoneNumber(text);
DROP TABLE IF EXISTS dbo.CircuitBreakerState;
DROP TABLE IF EXISTS dbo.PerformanceMetrics;
DROP TABLE IF EXISTS dbo.ErrorLog;
DROP TABLE IF EXISTS dbo.AuditLog;
DROP TABLE IF EXISTS dbo.SystemConfiguration;
DROP FUNCTION IF EXISTS dbo.AuditSystemConfigurationChange();
