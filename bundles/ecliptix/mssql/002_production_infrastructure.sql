-- Phase "infrastructure", step "production-infrastructure" (SQL Server, T-SQL): the runbook's
-- ProductionInfrastructure.sql. UNTESTED: no SQL Server was available where this bundle was
-- written; see the bundle's README. Batches are separated by lines holding only GO.
-- Procedures validate input and THROW (50001 and up) with the same messages as on the other
-- engines; their CATCH blocks roll back, write ErrorLog and re-throw.

CREATE TABLE dbo.SystemConfiguration (
    ConfigKey   NVARCHAR(200) NOT NULL CONSTRAINT PK_SystemConfiguration PRIMARY KEY,
    ConfigValue NVARCHAR(4000) NOT NULL,
    DataType    NVARCHAR(20) NOT NULL CONSTRAINT DF_SystemConfiguration_DataType DEFAULT N'string'
                CONSTRAINT CK_SystemConfiguration_DataType CHECK (DataType IN (N'string', N'int', N'bool', N'decimal')),
    Description NVARCHAR(500) NULL,
    Category    NVARCHAR(100) NOT NULL CONSTRAINT DF_SystemConfiguration_Category DEFAULT N'General',
    CreatedAt   DATETIME2(3) NOT NULL CONSTRAINT DF_SystemConfiguration_CreatedAt DEFAULT SYSUTCDATETIME(),
    UpdatedAt   DATETIME2(3) NOT NULL CONSTRAINT DF_SystemConfiguration_UpdatedAt DEFAULT SYSUTCDATETIME()
);

-- The runbook's configuration, as defaults.
INSERT INTO dbo.SystemConfiguration (ConfigKey, ConfigValue, DataType, Description, Category)
SELECT d.ConfigKey, d.ConfigValue, d.DataType, d.Description, d.Category
FROM (VALUES
    (N'Authentication.MaxFailedAttempts', N'5', N'int', N'Maximum failed attempts', N'Security'),
    (N'Authentication.LockoutDurationMinutes', N'15', N'int', N'Lockout duration after too many failed logins, in minutes', N'Security'),
    (N'OTP.MaxAttempts', N'3', N'int', N'Maximum OTP attempts per verification flow', N'Security'),
    (N'Database.CleanupBatchSize', N'1000', N'int', N'Rows deleted per cleanup batch', N'Performance'),
    (N'Monitoring.EnableMetrics', N'1', N'bool', N'Record PerformanceMetrics rows (1) or not (0)', N'Performance'),
    (N'Audit.RetentionDays', N'365', N'int', N'Days audit rows are kept', N'Audit'),
    (N'Audit.LogValidations', N'0', N'bool', N'Audit every input validation call (1) or not (0)', N'Audit'),
    (N'CircuitBreaker.FailureThreshold', N'5', N'int', N'Consecutive failures that open a circuit', N'Resilience'),
    (N'CircuitBreaker.OpenDurationSeconds', N'60', N'int', N'Seconds an open circuit waits before a trial call', N'Resilience')
) AS d (ConfigKey, ConfigValue, DataType, Description, Category)
WHERE NOT EXISTS (SELECT 1 FROM dbo.SystemConfiguration c WHERE c.ConfigKey = d.ConfigKey);

CREATE TABLE dbo.AuditLog (
    Id            BIGINT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_AuditLog PRIMARY KEY,
    TableName     NVARCHAR(128) NOT NULL,
    OperationType NVARCHAR(50) NOT NULL,
    RecordId      NVARCHAR(128) NULL,
    OldValues     NVARCHAR(MAX) NULL,     -- JSON
    NewValues     NVARCHAR(MAX) NULL,     -- JSON
    UserId        NVARCHAR(128) NULL,
    IpAddress     NVARCHAR(45) NULL,
    CreatedAt     DATETIME2(3) NOT NULL CONSTRAINT DF_AuditLog_CreatedAt DEFAULT SYSUTCDATETIME()
);
CREATE INDEX IX_AuditLog_CreatedAt ON dbo.AuditLog (CreatedAt);
CREATE INDEX IX_AuditLog_OperationType_CreatedAt ON dbo.AuditLog (OperationType, CreatedAt);

CREATE TABLE dbo.ErrorLog (
    Id            BIGINT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_ErrorLog PRIMARY KEY,
    ProcedureName NVARCHAR(128) NOT NULL,
    ErrorNumber   INT NULL,
    ErrorMessage  NVARCHAR(4000) NOT NULL,
    ErrorSeverity INT NULL,
    Parameters    NVARCHAR(MAX) NULL,     -- JSON
    CreatedAt     DATETIME2(3) NOT NULL CONSTRAINT DF_ErrorLog_CreatedAt DEFAULT SYSUTCDATETIME()
);
CREATE INDEX IX_ErrorLog_CreatedAt ON dbo.ErrorLog (CreatedAt);

CREATE TABLE dbo.PerformanceMetrics (
    Id              BIGINT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_PerformanceMetrics PRIMARY KEY,
    ProcedureName   NVARCHAR(128) NOT NULL,
    ExecutionTimeMs INT NOT NULL,
    RowsAffected    INT NULL,
    CreatedAt       DATETIME2(3) NOT NULL CONSTRAINT DF_PerformanceMetrics_CreatedAt DEFAULT SYSUTCDATETIME()
);
CREATE INDEX IX_PerformanceMetrics_CreatedAt ON dbo.PerformanceMetrics (CreatedAt, ProcedureName);

CREATE TABLE dbo.CircuitBreakerState (
    Name          NVARCHAR(128) NOT NULL CONSTRAINT PK_CircuitBreakerState PRIMARY KEY,
    State         NVARCHAR(20) NOT NULL CONSTRAINT DF_CircuitBreakerState_State DEFAULT N'closed'
                  CONSTRAINT CK_CircuitBreakerState_State CHECK (State IN (N'closed', N'open', N'half_open')),
    FailureCount  INT NOT NULL CONSTRAINT DF_CircuitBreakerState_FailureCount DEFAULT 0,
    LastFailureAt DATETIME2(3) NULL,
    OpenedAt      DATETIME2(3) NULL,
    CreatedAt     DATETIME2(3) NOT NULL CONSTRAINT DF_CircuitBreakerState_CreatedAt DEFAULT SYSUTCDATETIME(),
    UpdatedAt     DATETIME2(3) NOT NULL CONSTRAINT DF_CircuitBreakerState_UpdatedAt DEFAULT SYSUTCDATETIME()
);
GO

-- Every change of a configuration value is audited, whoever makes it.
CREATE OR ALTER TRIGGER dbo.SystemConfiguration_Audit ON dbo.SystemConfiguration
AFTER UPDATE
AS
BEGIN
    SET NOCOUNT ON;
    INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, OldValues, NewValues)
    SELECT N'SystemConfiguration', N'UPDATE', i.ConfigKey,
           (SELECT d.ConfigValue AS ConfigValue FOR JSON PATH, WITHOUT_ARRAY_WRAPPER),
           (SELECT i.ConfigValue AS ConfigValue FOR JSON PATH, WITHOUT_ARRAY_WRAPPER)
    FROM inserted i
    JOIN deleted d ON d.ConfigKey = i.ConfigKey
    WHERE d.ConfigValue <> i.ConfigValue COLLATE Latin1_General_BIN2;
END
GO

-- Internal helpers (not operations): pure input checks, and the PerformanceMetrics row of a call.
CREATE OR ALTER FUNCTION dbo.IsValidPhoneNumber (@PhoneNumber NVARCHAR(100))
RETURNS BIT
AS
BEGIN
    RETURN CASE WHEN @PhoneNumber LIKE N'+[1-9]%' AND LEN(@PhoneNumber) BETWEEN 8 AND 16
                     AND SUBSTRING(@PhoneNumber, 2, 100) NOT LIKE N'%[^0-9]%' THEN 1 ELSE 0 END;
END
GO

CREATE OR ALTER FUNCTION dbo.IsValidGuid (@Value NVARCHAR(100))
RETURNS BIT
AS
BEGIN
    -- TRY_CONVERT ignores characters after the 36th and accepts braces: check the shape too.
    RETURN CASE WHEN DATALENGTH(@Value) = 72 AND TRY_CONVERT(UNIQUEIDENTIFIER, @Value) IS NOT NULL
                     AND @Value NOT LIKE N'%[^0-9a-fA-F-]%' THEN 1 ELSE 0 END;
END
GO

CREATE OR ALTER PROCEDURE dbo.RecordPerformance
    @ProcedureName NVARCHAR(128),
    @StartedAt DATETIME2(7),
    @RowsAffected INT
AS
BEGIN
    SET NOCOUNT ON;
    IF (SELECT ConfigValue FROM dbo.SystemConfiguration WHERE ConfigKey = N'Monitoring.EnableMetrics') = N'1'
        INSERT INTO dbo.PerformanceMetrics (ProcedureName, ExecutionTimeMs, RowsAffected)
        VALUES (@ProcedureName, DATEDIFF(MILLISECOND, @StartedAt, SYSUTCDATETIME()), @RowsAffected);
END
GO

-- GetConfigValue: the value of a key (NULL when the key is unknown), as a one-row result.
CREATE OR ALTER PROCEDURE dbo.GetConfigValue
    @ConfigKey NVARCHAR(200)
AS
BEGIN
    SET NOCOUNT ON;
    SELECT (SELECT ConfigValue FROM dbo.SystemConfiguration WHERE ConfigKey = @ConfigKey) AS ConfigValue;
END
GO

-- SetConfigValue: typed update; refuses unknown keys and values that do not fit the DataType.
CREATE OR ALTER PROCEDURE dbo.SetConfigValue
    @ConfigKey NVARCHAR(200),
    @ConfigValue NVARCHAR(4000)
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    DECLARE @Started DATETIME2(7) = SYSUTCDATETIME();
    DECLARE @DataType NVARCHAR(20);
    BEGIN TRY
        SELECT @DataType = DataType FROM dbo.SystemConfiguration WHERE ConfigKey = @ConfigKey;
        IF @DataType IS NULL
            THROW 50001, N'Unknown configuration key', 1;
        IF @ConfigValue IS NULL
           OR (@DataType = N'int' AND (TRY_CONVERT(BIGINT, @ConfigValue) IS NULL OR @ConfigValue LIKE N'%[^0-9-]%'))
           OR (@DataType = N'bool' AND @ConfigValue NOT IN (N'0', N'1'))
           OR (@DataType = N'decimal' AND (TRY_CONVERT(DECIMAL(38, 10), @ConfigValue) IS NULL OR @ConfigValue LIKE N'%[^0-9.-]%'))
            THROW 50002, N'Invalid configuration value for the key''s DataType (int: an integer, bool: 0 or 1, decimal: a number)', 1;
        UPDATE dbo.SystemConfiguration SET ConfigValue = @ConfigValue, UpdatedAt = SYSUTCDATETIME()
        WHERE ConfigKey = @ConfigKey;
        EXEC dbo.RecordPerformance N'SetConfigValue', @Started, 1;
        SELECT ConfigKey, ConfigValue, DataType FROM dbo.SystemConfiguration WHERE ConfigKey = @ConfigKey;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;
        INSERT INTO dbo.ErrorLog (ProcedureName, ErrorNumber, ErrorMessage, ErrorSeverity, Parameters)
        VALUES (N'SetConfigValue', ERROR_NUMBER(), ERROR_MESSAGE(), ERROR_SEVERITY(),
                (SELECT @ConfigKey AS ConfigKey, @ConfigValue AS ConfigValue FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        THROW;
    END CATCH
END
GO

-- ValidatePhoneNumber / ValidateGuid: IsValid 1 or 0; audited when Audit.LogValidations = 1.
CREATE OR ALTER PROCEDURE dbo.ValidatePhoneNumber
    @PhoneNumber NVARCHAR(100)
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @IsValid INT = dbo.IsValidPhoneNumber(@PhoneNumber);
    IF (SELECT ConfigValue FROM dbo.SystemConfiguration WHERE ConfigKey = N'Audit.LogValidations') = N'1'
        INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, NewValues)
        VALUES (N'Validation', N'VALIDATION', LEFT(@PhoneNumber, 128),
                (SELECT N'PhoneNumber' AS [Check], @IsValid AS IsValid FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
    SELECT @IsValid AS IsValid;
END
GO

CREATE OR ALTER PROCEDURE dbo.ValidateGuid
    @Value NVARCHAR(100)
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @IsValid INT = dbo.IsValidGuid(@Value);
    IF (SELECT ConfigValue FROM dbo.SystemConfiguration WHERE ConfigKey = N'Audit.LogValidations') = N'1'
        INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, NewValues)
        VALUES (N'Validation', N'VALIDATION', LEFT(@Value, 128),
                (SELECT N'Guid' AS [Check], @IsValid AS IsValid FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
    SELECT @IsValid AS IsValid;
END
GO

-- CleanupAuditLogs: deletes ONE batch of rows older than RetentionDays; call again until
-- RowsRemaining = 0 (each call is one short transaction, which is what a fleet job wants).
CREATE OR ALTER PROCEDURE dbo.CleanupAuditLogs
    @RetentionDays INT,
    @BatchSize INT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    DECLARE @Started DATETIME2(7) = SYSUTCDATETIME();
    DECLARE @Cutoff DATETIME2(3);
    DECLARE @Deleted INT;
    BEGIN TRY
        IF @RetentionDays IS NULL OR @RetentionDays < 1
            THROW 50010, N'Invalid RetentionDays: expected at least 1', 1;
        IF @BatchSize IS NULL OR @BatchSize NOT BETWEEN 1 AND 100000
            THROW 50011, N'Invalid BatchSize: expected 1 to 100000', 1;
        SET @Cutoff = DATEADD(DAY, -@RetentionDays, SYSUTCDATETIME());
        DELETE TOP (@BatchSize) FROM dbo.AuditLog WHERE CreatedAt < @Cutoff;
        SET @Deleted = @@ROWCOUNT;
        IF @Deleted > 0
            INSERT INTO dbo.AuditLog (TableName, OperationType, NewValues)
            VALUES (N'AuditLog', N'CLEANUP',
                    (SELECT @RetentionDays AS RetentionDays, @Deleted AS RowsDeleted FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        EXEC dbo.RecordPerformance N'CleanupAuditLogs', @Started, @Deleted;
        SELECT CAST(@Deleted AS BIGINT) AS RowsDeleted,
               (SELECT COUNT_BIG(*) FROM dbo.AuditLog WHERE CreatedAt < @Cutoff) AS RowsRemaining;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;
        INSERT INTO dbo.ErrorLog (ProcedureName, ErrorNumber, ErrorMessage, ErrorSeverity, Parameters)
        VALUES (N'CleanupAuditLogs', ERROR_NUMBER(), ERROR_MESSAGE(), ERROR_SEVERITY(),
                (SELECT @RetentionDays AS RetentionDays, @BatchSize AS BatchSize FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        THROW;
    END CATCH
END
GO

-- CleanupExpiredContexts: deletes ONE batch of contexts expired, or deactivated, more than
-- OlderThanHours ago; call again until RowsRemaining = 0.
CREATE OR ALTER PROCEDURE dbo.CleanupExpiredContexts
    @BatchSize INT,
    @OlderThanHours INT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    DECLARE @Started DATETIME2(7) = SYSUTCDATETIME();
    DECLARE @Cutoff DATETIME2(3);
    DECLARE @Deleted INT;
    BEGIN TRY
        IF @BatchSize IS NULL OR @BatchSize NOT BETWEEN 1 AND 100000
            THROW 50011, N'Invalid BatchSize: expected 1 to 100000', 1;
        IF @OlderThanHours IS NULL OR @OlderThanHours < 1
            THROW 50012, N'Invalid OlderThanHours: expected at least 1', 1;
        SET @Cutoff = DATEADD(HOUR, -@OlderThanHours, SYSUTCDATETIME());
        DELETE TOP (@BatchSize) FROM dbo.AuthenticationContexts
        WHERE ExpiresAt < @Cutoff OR (IsActive = 0 AND UpdatedAt < @Cutoff);
        SET @Deleted = @@ROWCOUNT;
        IF @Deleted > 0
            INSERT INTO dbo.AuditLog (TableName, OperationType, NewValues)
            VALUES (N'AuthenticationContexts', N'CLEANUP',
                    (SELECT @OlderThanHours AS OlderThanHours, @Deleted AS RowsDeleted FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        EXEC dbo.RecordPerformance N'CleanupExpiredContexts', @Started, @Deleted;
        SELECT CAST(@Deleted AS BIGINT) AS RowsDeleted,
               (SELECT COUNT_BIG(*) FROM dbo.AuthenticationContexts
                WHERE ExpiresAt < @Cutoff OR (IsActive = 0 AND UpdatedAt < @Cutoff)) AS RowsRemaining;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;
        INSERT INTO dbo.ErrorLog (ProcedureName, ErrorNumber, ErrorMessage, ErrorSeverity, Parameters)
        VALUES (N'CleanupExpiredContexts', ERROR_NUMBER(), ERROR_MESSAGE(), ERROR_SEVERITY(),
                (SELECT @BatchSize AS BatchSize, @OlderThanHours AS OlderThanHours FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        THROW;
    END CATCH
END
GO
