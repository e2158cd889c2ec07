-- Reverts step "production-infrastructure" (SQL Server, UNTESTED): drops its procedures, functions
-- and tables (with the audit and metrics history; the trigger goes with its table).
DROP PROCEDURE IF EXISTS dbo.CleanupExpiredContexts;
DROP PROCEDURE IF EXISTS dbo.CleanupAuditLogs;
DROP PROCEDURE IF EXISTS dbo.ValidateGuid;
DROP PROCEDURE IF EXISTS dbo.ValidatePhoneNumber;
DROP PROCEDURE IF EXISTS dbo.SetConfigValue;
DROP PROCEDURE IF EXISTS dbo.GetConfigValue;
DROP PROCEDURE IF EXISTS dbo.RecordPerformance;
DROP FUNCTION IF EXISTS dbo.IsValidGuid;
DROP FUNCTION IF EXISTS dbo.IsValidPhoneNumber;
DROP TABLE IF EXISTS dbo.CircuitBreakerState;
DROP TABLE IF EXISTS dbo.PerformanceMetrics;
DROP TABLE IF EXISTS dbo.ErrorLog;
DROP TABLE IF EXISTS dbo.AuditLog;
DROP TABLE IF EXISTS dbo.SystemConfiguration;
GO
