-- Phase "infrastructure", step "production-infrastructure" (SQLite): the runbook's
-- ProductionInfrastructure.sql. System configuration, audit and error logs, performance metrics,
-- circuit breaker state, and what SQLite needs in place of stored procedures:
--   ValidationGuard   inserting a row aborts the call: a BEFORE INSERT trigger per error code
--                     raises that code's message, and a CHECK that always fails catches codes
--                     without a trigger. Operations validate input with
--                     INSERT INTO ValidationGuard (Code) SELECT 'CODE' WHERE <input is bad>;
--   OperationState    one row per operation, rewritten by each call: its start time (for
--                     PerformanceMetrics) and the values it computes between statements.
--   ProcedureCatalog  the procedures (manifest operations) installed by the applied steps; every
--                     operation refuses to run when its row is missing (e.g. after a revert).

CREATE TABLE SystemConfiguration (
    ConfigKey   TEXT PRIMARY KEY,
    ConfigValue TEXT NOT NULL,
    DataType    TEXT NOT NULL DEFAULT 'string'
                CHECK (DataType IN ('string', 'int', 'bool', 'decimal')),
    Description TEXT,
    Category    TEXT NOT NULL DEFAULT 'General',
    CreatedAt   TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UpdatedAt   TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- The runbook's configuration, as defaults (INSERT OR IGNORE keeps values already set).
INSERT OR IGNORE INTO SystemConfiguration (ConfigKey, ConfigValue, DataType, Description, Category) VALUES
    ('Authentication.MaxFailedAttempts', '5', 'int', 'Maximum failed attempts', 'Security'),
    ('Authentication.LockoutDurationMinutes', '15', 'int', 'Lockout duration after too many failed logins, in minutes', 'Security'),
    ('OTP.MaxAttempts', '3', 'int', 'Maximum OTP attempts per verification flow', 'Security'),
    ('Database.CleanupBatchSize', '1000', 'int', 'Rows deleted per cleanup batch', 'Performance'),
    ('Monitoring.EnableMetrics', '1', 'bool', 'Record PerformanceMetrics rows (1) or not (0)', 'Performance'),
    ('Audit.RetentionDays', '365', 'int', 'Days audit rows are kept', 'Audit'),
    ('Audit.LogValidations', '0', 'bool', 'Audit every input validation call (1) or not (0)', 'Audit'),
    ('CircuitBreaker.FailureThreshold', '5', 'int', 'Consecutive failures that open a circuit', 'Resilience'),
    ('CircuitBreaker.OpenDurationSeconds', '60', 'int', 'Seconds an open circuit waits before a trial call', 'Resilience');

CREATE TABLE AuditLog (
    Id            INTEGER PRIMARY KEY AUTOINCREMENT,
    TableName     TEXT NOT NULL,
    OperationType TEXT NOT NULL,      -- INSERT, UPDATE, DELETE, LOGIN_SUCCESS, LOGIN_FAILED, ...
    RecordId      TEXT,
    OldValues     TEXT,               -- JSON
    NewValues     TEXT,               -- JSON
    UserId        TEXT,
    IpAddress     TEXT,
    CreatedAt     TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX IX_AuditLog_CreatedAt ON AuditLog (CreatedAt);
CREATE INDEX IX_AuditLog_OperationType_CreatedAt ON AuditLog (OperationType, CreatedAt);

CREATE TABLE ErrorLog (
    Id            INTEGER PRIMARY KEY AUTOINCREMENT,
    ProcedureName TEXT NOT NULL,
    ErrorNumber   INTEGER,
    ErrorMessage  TEXT NOT NULL,
    ErrorSeverity INTEGER,
    Parameters    TEXT,               -- JSON
    CreatedAt     TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX IX_ErrorLog_CreatedAt ON ErrorLog (CreatedAt);

CREATE TABLE PerformanceMetrics (
    Id              INTEGER PRIMARY KEY AUTOINCREMENT,
    ProcedureName   TEXT NOT NULL,
    ExecutionTimeMs INTEGER NOT NULL,
    RowsAffected    INTEGER,
    CreatedAt       TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX IX_PerformanceMetrics_CreatedAt ON PerformanceMetrics (CreatedAt, ProcedureName);

CREATE TABLE CircuitBreakerState (
    Name          TEXT PRIMARY KEY,
    State         TEXT NOT NULL DEFAULT 'closed' CHECK (State IN ('closed', 'open', 'half_open')),
    FailureCount  INTEGER NOT NULL DEFAULT 0,
    LastFailureAt TEXT,
    OpenedAt      TEXT,
    CreatedAt     TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UpdatedAt     TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

-- Every change of a configuration value is audited, whoever makes it.
CREATE TRIGGER SystemConfiguration_Audit AFTER UPDATE OF ConfigValue ON SystemConfiguration
WHEN OLD.ConfigValue IS NOT NEW.ConfigValue
BEGIN
    INSERT INTO AuditLog (TableName, OperationType, RecordId, OldValues, NewValues)
    VALUES ('SystemConfiguration', 'UPDATE', NEW.ConfigKey,
            json_object('ConfigValue', OLD.ConfigValue), json_object('ConfigValue', NEW.ConfigValue));
END;

CREATE TABLE ValidationGuard (
    Code TEXT NOT NULL,
    CONSTRAINT "operation refused: invalid input" CHECK (0)
);

CREATE TABLE OperationState (
    OperationName TEXT PRIMARY KEY,
    StartedAt     REAL NOT NULL,      -- julianday('now') when the call began
    RowsAffected  INTEGER NOT NULL DEFAULT 0,
    ResultId      TEXT,               -- e.g. the GUID a Create* call generated
    Outcome       TEXT,
    Counter       INTEGER
);

CREATE TABLE ProcedureCatalog (
    ProcedureName TEXT PRIMARY KEY,
    StepName      TEXT NOT NULL,
    InstalledAt   TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

INSERT INTO ProcedureCatalog (ProcedureName, StepName) VALUES
    ('GetConfigValue', 'production-infrastructure'),
    ('SetConfigValue', 'production-infrastructure'),
    ('ValidatePhoneNumber', 'production-infrastructure'),
    ('ValidateGuid', 'production-infrastructure'),
    ('CleanupAuditLogs', 'production-infrastructure'),
    ('CleanupExpiredContexts', 'production-infrastructure');

-- The error messages of the infrastructure procedures and of the shared input checks.
CREATE TRIGGER ValidationGuard_NotInstalled BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'NOT_INSTALLED'
BEGIN SELECT RAISE(ABORT, 'Procedure is not installed: its step has not been applied or was reverted'); END;

CREATE TRIGGER ValidationGuard_UnknownConfigKey BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'UNKNOWN_CONFIG_KEY'
BEGIN SELECT RAISE(ABORT, 'Unknown configuration key'); END;

CREATE TRIGGER ValidationGuard_InvalidConfigValue BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'INVALID_CONFIG_VALUE'
BEGIN SELECT RAISE(ABORT, 'Invalid configuration value for the key''s DataType (int: an integer, bool: 0 or 1, decimal: a number)'); END;

CREATE TRIGGER ValidationGuard_InvalidPhoneNumber BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'INVALID_PHONE_NUMBER'
BEGIN SELECT RAISE(ABORT, 'Invalid phone number: expected E.164 (+ followed by 7 to 15 digits)'); END;

CREATE TRIGGER ValidationGuard_InvalidGuid BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'INVALID_GUID'
BEGIN SELECT RAISE(ABORT, 'Invalid identifier: expected a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)'); END;

CREATE TRIGGER ValidationGuard_InvalidBatchSize BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'INVALID_BATCH_SIZE'
BEGIN SELECT RAISE(ABORT, 'Invalid BatchSize: expected 1 to 100000'); END;

CREATE TRIGGER ValidationGuard_InvalidRetentionDays BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'INVALID_RETENTION_DAYS'
BEGIN SELECT RAISE(ABORT, 'Invalid RetentionDays: expected at least 1'); END;

CREATE TRIGGER ValidationGuard_InvalidOlderThanHours BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'INVALID_OLDER_THAN_HOURS'
BEGIN SELECT RAISE(ABORT, 'Invalid OlderThanHours: expected at least 1'); END;
