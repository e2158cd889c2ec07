-- Phase "procedures", step "auth-context-procedures" (SQL Server, T-SQL, repeatable): the runbook's
-- AuthContextProcedures.sql. UNTESTED: see the bundle's README. CREATE OR ALTER throughout, so the
-- step can run again whenever this file changes. Batches are separated by lines holding only GO.

-- CreateAuthenticationContext: opens a context (session) for an active membership.
CREATE OR ALTER PROCEDURE dbo.CreateAuthenticationContext
    @MembershipId NVARCHAR(100),
    @ValidForMinutes INT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    DECLARE @Started DATETIME2(7) = SYSUTCDATETIME();
    DECLARE @Token UNIQUEIDENTIFIER = NEWID();
    DECLARE @ExpiresAt DATETIME2(3);
    BEGIN TRY
        IF dbo.IsValidGuid(@MembershipId) = 0
            THROW 50020, N'Invalid identifier: expected a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)', 1;
        IF @ValidForMinutes IS NULL OR @ValidForMinutes NOT BETWEEN 1 AND 43200
            THROW 50021, N'Invalid ValidForMinutes: expected 1 to 43200', 1;
        IF NOT EXISTS (SELECT 1 FROM dbo.Memberships
                       WHERE UniqueId = CAST(@MembershipId AS UNIQUEIDENTIFIER) AND Status = N'active')
            THROW 50022, N'Membership not found or not active', 1;
        SET @ExpiresAt = DATEADD(MINUTE, @ValidForMinutes, SYSUTCDATETIME());
        BEGIN TRANSACTION;
        INSERT INTO dbo.AuthenticationContexts (ContextToken, MembershipId, ExpiresAt)
        VALUES (@Token, CAST(@MembershipId AS UNIQUEIDENTIFIER), @ExpiresAt);
        INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, NewValues)
        VALUES (N'AuthenticationContexts', N'INSERT', LOWER(CAST(@Token AS NVARCHAR(36))),
                (SELECT LOWER(@MembershipId) AS MembershipId, @ExpiresAt AS ExpiresAt FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        COMMIT TRANSACTION;
        EXEC dbo.RecordPerformance N'CreateAuthenticationContext', @Started, 1;
        SELECT LOWER(CAST(@Token AS NVARCHAR(36))) AS ContextToken, @ExpiresAt AS ExpiresAt;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;
        INSERT INTO dbo.ErrorLog (ProcedureName, ErrorNumber, ErrorMessage, ErrorSeverity, Parameters)
        VALUES (N'CreateAuthenticationContext', ERROR_NUMBER(), ERROR_MESSAGE(), ERROR_SEVERITY(),
                (SELECT @MembershipId AS MembershipId, @ValidForMinutes AS ValidForMinutes FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        THROW;
    END CATCH
END
GO

-- ValidateAuthenticationContext: IsValid = 1 for an active, unexpired context; an expired context
-- is deactivated the first time it is presented.
CREATE OR ALTER PROCEDURE dbo.ValidateAuthenticationContext
    @ContextToken NVARCHAR(100)
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    DECLARE @Started DATETIME2(7) = SYSUTCDATETIME();
    DECLARE @Expired INT;
    BEGIN TRY
        IF dbo.IsValidGuid(@ContextToken) = 0
            THROW 50020, N'Invalid identifier: expected a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)', 1;
        BEGIN TRANSACTION;
        UPDATE dbo.AuthenticationContexts SET IsActive = 0, UpdatedAt = SYSUTCDATETIME()
        WHERE ContextToken = CAST(@ContextToken AS UNIQUEIDENTIFIER) AND IsActive = 1 AND ExpiresAt <= SYSUTCDATETIME();
        SET @Expired = @@ROWCOUNT;
        IF @Expired > 0
            INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, OldValues, NewValues)
            VALUES (N'AuthenticationContexts', N'UPDATE', LOWER(@ContextToken), N'{"IsActive":1}',
                    N'{"IsActive":0,"Reason":"expired"}');
        UPDATE dbo.AuthenticationContexts SET LastAccessedAt = SYSUTCDATETIME()
        WHERE ContextToken = CAST(@ContextToken AS UNIQUEIDENTIFIER) AND IsActive = 1;
        COMMIT TRANSACTION;
        EXEC dbo.RecordPerformance N'ValidateAuthenticationContext', @Started, @Expired;
        SELECT CASE WHEN c.Id IS NULL THEN 0 ELSE 1 END AS IsValid,
               LOWER(CAST(c.MembershipId AS NVARCHAR(36))) AS MembershipId, c.ExpiresAt
        FROM (SELECT 1 AS One) AS one
        LEFT JOIN dbo.AuthenticationContexts c
               ON c.ContextToken = CAST(@ContextToken AS UNIQUEIDENTIFIER) AND c.IsActive = 1;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;
        INSERT INTO dbo.ErrorLog (ProcedureName, ErrorNumber, ErrorMessage, ErrorSeverity, Parameters)
        VALUES (N'ValidateAuthenticationContext', ERROR_NUMBER(), ERROR_MESSAGE(), ERROR_SEVERITY(),
                (SELECT @ContextToken AS ContextToken FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        THROW;
    END CATCH
END
GO

-- DeactivateAuthenticationContext: logout; Deactivated = 1 when the context was active.
CREATE OR ALTER PROCEDURE dbo.DeactivateAuthenticationContext
    @ContextToken NVARCHAR(100)
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    DECLARE @Started DATETIME2(7) = SYSUTCDATETIME();
    DECLARE @Rows INT;
    BEGIN TRY
        IF dbo.IsValidGuid(@ContextToken) = 0
            THROW 50020, N'Invalid identifier: expected a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)', 1;
        BEGIN TRANSACTION;
        UPDATE dbo.AuthenticationContexts SET IsActive = 0, UpdatedAt = SYSUTCDATETIME()
        WHERE ContextToken = CAST(@ContextToken AS UNIQUEIDENTIFIER) AND IsActive = 1;
        SET @Rows = @@ROWCOUNT;
        IF @Rows > 0
            INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, OldValues, NewValues)
            VALUES (N'AuthenticationContexts', N'UPDATE', LOWER(@ContextToken), N'{"IsActive":1}',
                    N'{"IsActive":0,"Reason":"deactivated"}');
        COMMIT TRANSACTION;
        EXEC dbo.RecordPerformance N'DeactivateAuthenticationContext', @Started, @Rows;
        SELECT @Rows AS Deactivated;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;
        INSERT INTO dbo.ErrorLog (ProcedureName, ErrorNumber, ErrorMessage, ErrorSeverity, Parameters)
        VALUES (N'DeactivateAuthenticationContext', ERROR_NUMBER(), ERROR_MESSAGE(), ERROR_SEVERITY(),
                (SELECT @ContextToken AS ContextToken FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        THROW;
    END CATCH
END
GO

PRINT N'✅ Enhanced Authentication Context procedures created successfully with:';
PRINT N'   - Comprehensive input validation and sanitization';
PRINT N'   - Structured error handling and logging';
PRINT N'   - Performance metrics collection';
PRINT N'   - Complete audit trail for security compliance';
GO
