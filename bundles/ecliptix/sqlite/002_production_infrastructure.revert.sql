-- Reverts step "production-infrastructure" (SQLite): drops the infrastructure tables, their
-- indexes and triggers (dropping a table drops both), audit and metrics history included.
DROP TABLE IF EXISTS ProcedureCatalog;
DROP TABLE IF EXISTS OperationState;
DROP TABLE IF EXISTS ValidationGuard;
DROP TABLE IF EXISTS CircuitBreakerState;
DROP TABLE IF EXISTS PerformanceMetrics;
DROP TABLE IF EXISTS ErrorLog;
DROP TABLE IF EXISTS AuditLog;
DROP TABLE IF EXISTS SystemConfiguration;
