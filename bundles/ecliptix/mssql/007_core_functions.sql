-- Phase "procedures", step "core-functions" (SQL Server, T-SQL, repeatable): the runbook's
-- CoreFunctions.sql: the circuit breaker over dbo.CircuitBreakerState. UNTESTED: see the bundle's
-- README. A circuit opens after CircuitBreaker.FailureThreshold failures in a row, lets one trial
-- call through (half_open) after CircuitBreaker.OpenDurationSeconds, closes on a success and opens
-- again on a failed trial.

CREATE OR ALTER PROCEDURE dbo.GetCircuitBreakerState
    @Name NVARCHAR(200)
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    DECLARE @OpenSeconds INT = ISNULL(TRY_CAST((SELECT ConfigValue FROM dbo.SystemConfiguration
                                                WHERE ConfigKey = N'CircuitBreaker.OpenDurationSeconds') AS INT), 60);
    BEGIN TRY
        IF @Name IS NULL OR LEN(@Name) = 0 OR LEN(@Name) > 128
            THROW 50050, N'Invalid circuit breaker name: expected 1 to 128 characters', 1;
        UPDATE dbo.CircuitBreakerState SET State = N'half_open', UpdatedAt = SYSUTCDATETIME()
        WHERE Name = @Name AND State = N'open' AND OpenedAt <= DATEADD(SECOND, -@OpenSeconds, SYSUTCDATETIME());
        IF @@ROWCOUNT > 0
            INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, OldValues, NewValues)
            VALUES (N'CircuitBreakerState', N'UPDATE', @Name, N'{"State":"open"}', N'{"State":"half_open"}');
        SELECT ISNULL(c.State, N'closed') AS State, ISNULL(c.FailureCount, 0) AS FailureCount,
               CASE WHEN ISNULL(c.State, N'closed') = N'open' THEN 0 ELSE 1 END AS AllowRequest
        FROM (SELECT 1 AS One) AS one LEFT JOIN dbo.CircuitBreakerState c ON c.Name = @Name;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;
        INSERT INTO dbo.ErrorLog (ProcedureName, ErrorNumber, ErrorMessage, ErrorSeverity, Parameters)
        VALUES (N'GetCircuitBreakerState', ERROR_NUMBER(), ERROR_MESSAGE(), ERROR_SEVERITY(),
                (SELECT @Name AS Name FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        THROW;
    END CATCH
END
GO

CREATE OR ALTER PROCEDURE dbo.RecordCircuitBreakerResult
    @Name NVARCHAR(200),
    @Succeeded BIT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    DECLARE @Started DATETIME2(7) = SYSUTCDATETIME();
    DECLARE @Threshold INT = ISNULL(TRY_CAST((SELECT ConfigValue FROM dbo.SystemConfiguration
                                              WHERE ConfigKey = N'CircuitBreaker.FailureThreshold') AS INT), 5);
    DECLARE @OldState NVARCHAR(20), @NewState NVARCHAR(20), @Failures INT;
    BEGIN TRY
        IF @Name IS NULL OR LEN(@Name) = 0 OR LEN(@Name) > 128
            THROW 50050, N'Invalid circuit breaker name: expected 1 to 128 characters', 1;
        BEGIN TRANSACTION;
        IF NOT EXISTS (SELECT 1 FROM dbo.CircuitBreakerState WITH (UPDLOCK, HOLDLOCK) WHERE Name = @Name)
            INSERT INTO dbo.CircuitBreakerState (Name) VALUES (@Name);
        SELECT @OldState = State, @Failures = FailureCount
        FROM dbo.CircuitBreakerState WITH (UPDLOCK) WHERE Name = @Name;
        IF ISNULL(@Succeeded, 0) = 1
            SELECT @NewState = N'closed', @Failures = 0;
        ELSE
        BEGIN
            SET @Failures = @Failures + 1;
            SET @NewState = CASE WHEN @OldState = N'half_open' OR @Failures >= @Threshold THEN N'open' ELSE @OldState END;
        END
        UPDATE dbo.CircuitBreakerState
        SET State = @NewState,
            FailureCount = @Failures,
            LastFailureAt = CASE WHEN ISNULL(@Succeeded, 0) = 1 THEN LastFailureAt ELSE SYSUTCDATETIME() END,
            OpenedAt = CASE WHEN @NewState = N'open' AND @OldState <> N'open' THEN SYSUTCDATETIME()
                            WHEN @NewState = N'open' THEN OpenedAt END,
            UpdatedAt = SYSUTCDATETIME()
        WHERE Name = @Name;
        IF @NewState <> @OldState AND @NewState IN (N'open', N'closed')
            INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, OldValues, NewValues)
            VALUES (N'CircuitBreakerState', CASE @NewState WHEN N'open' THEN N'CIRCUIT_OPENED' ELSE N'CIRCUIT_CLOSED' END,
                    @Name, (SELECT @OldState AS State FOR JSON PATH, WITHOUT_ARRAY_WRAPPER),
                    (SELECT @NewState AS State, @Failures AS FailureCount FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        COMMIT TRANSACTION;
        EXEC dbo.RecordPerformance N'RecordCircuitBreakerResult', @Started, 1;
        SELECT @NewState AS State, @Failures AS FailureCount;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;
        INSERT INTO dbo.ErrorLog (ProcedureName, ErrorNumber, ErrorMessage, ErrorSeverity, Parameters)
        VALUES (N'RecordCircuitBreakerResult', ERROR_NUMBER(), ERROR_MESSAGE(), ERROR_SEVERITY(),
                (SELECT @Name AS Name, @Succeeded AS Succeeded FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        THROW;
    END CATCH
END
GO

PRINT N'✅ Enhanced core functions created successfully (circuit breaker).';
GO
