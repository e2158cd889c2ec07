-- Phase "procedures", step "memberships-procedures" (SQL Server, T-SQL, repeatable): the runbook's
-- MembershipsProcedures.sql. UNTESTED: see the bundle's README. CREATE OR ALTER throughout.

-- CreateMembership: registers a membership under a new GUID.
CREATE OR ALTER PROCEDURE dbo.CreateMembership
    @PhoneNumber NVARCHAR(100),
    @SecureKey NVARCHAR(1000)
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    DECLARE @Started DATETIME2(7) = SYSUTCDATETIME();
    DECLARE @Id UNIQUEIDENTIFIER = NEWID();
    BEGIN TRY
        IF dbo.IsValidPhoneNumber(@PhoneNumber) = 0
            THROW 50030, N'Invalid phone number: expected E.164 (+ followed by 7 to 15 digits)', 1;
        IF @SecureKey IS NULL OR LEN(@SecureKey) NOT BETWEEN 8 AND 512
            THROW 50031, N'Invalid secure key: expected 8 to 512 characters', 1;
        IF EXISTS (SELECT 1 FROM dbo.Memberships WHERE PhoneNumber = @PhoneNumber)
            THROW 50032, N'A membership with this phone number already exists', 1;
        BEGIN TRANSACTION;
        INSERT INTO dbo.Memberships (UniqueId, PhoneNumber, SecureKey) VALUES (@Id, @PhoneNumber, @SecureKey);
        INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, NewValues)
        VALUES (N'Memberships', N'INSERT', LOWER(CAST(@Id AS NVARCHAR(36))),
                (SELECT @PhoneNumber AS PhoneNumber, N'active' AS Status FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        COMMIT TRANSACTION;
        EXEC dbo.RecordPerformance N'CreateMembership', @Started, 1;
        SELECT LOWER(CAST(@Id AS NVARCHAR(36))) AS MembershipId, N'active' AS Status;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;
        INSERT INTO dbo.ErrorLog (ProcedureName, ErrorNumber, ErrorMessage, ErrorSeverity, Parameters)
        VALUES (N'CreateMembership', ERROR_NUMBER(), ERROR_MESSAGE(), ERROR_SEVERITY(),
                (SELECT @PhoneNumber AS PhoneNumber FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));  -- never the key
        THROW;
    END CATCH
END
GO

-- UpdateMembershipStatus: active, inactive or blocked; a membership that is no longer active loses
-- its active authentication contexts.
CREATE OR ALTER PROCEDURE dbo.UpdateMembershipStatus
    @MembershipId NVARCHAR(100),
    @Status NVARCHAR(20)
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    DECLARE @Started DATETIME2(7) = SYSUTCDATETIME();
    DECLARE @Old NVARCHAR(20);
    DECLARE @Rows INT = 0;
    BEGIN TRY
        IF dbo.IsValidGuid(@MembershipId) = 0
            THROW 50020, N'Invalid identifier: expected a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)', 1;
        IF @Status IS NULL OR @Status NOT IN (N'active', N'inactive', N'blocked')
            THROW 50033, N'Invalid status: expected active, inactive or blocked', 1;
        BEGIN TRANSACTION;
        SELECT @Old = Status FROM dbo.Memberships WITH (UPDLOCK, HOLDLOCK)
        WHERE UniqueId = CAST(@MembershipId AS UNIQUEIDENTIFIER);
        IF @Old IS NULL
            THROW 50034, N'Membership not found', 1;
        IF @Old <> @Status
        BEGIN
            UPDATE dbo.Memberships SET Status = @Status, UpdatedAt = SYSUTCDATETIME()
            WHERE UniqueId = CAST(@MembershipId AS UNIQUEIDENTIFIER);
            SET @Rows = @@ROWCOUNT;
            INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, OldValues, NewValues)
            VALUES (N'Memberships', N'UPDATE', LOWER(@MembershipId),
                    (SELECT @Old AS Status FOR JSON PATH, WITHOUT_ARRAY_WRAPPER),
                    (SELECT @Status AS Status FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        END
        IF @Status <> N'active'
            UPDATE dbo.AuthenticationContexts SET IsActive = 0, UpdatedAt = SYSUTCDATETIME()
            WHERE MembershipId = CAST(@MembershipId AS UNIQUEIDENTIFIER) AND IsActive = 1;
        COMMIT TRANSACTION;
        EXEC dbo.RecordPerformance N'UpdateMembershipStatus', @Started, @Rows;
        SELECT LOWER(@MembershipId) AS MembershipId, @Old AS OldStatus, @Status AS Status;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;
        INSERT INTO dbo.ErrorLog (ProcedureName, ErrorNumber, ErrorMessage, ErrorSeverity, Parameters)
        VALUES (N'UpdateMembershipStatus', ERROR_NUMBER(), ERROR_MESSAGE(), ERROR_SEVERITY(),
                (SELECT @MembershipId AS MembershipId, @Status AS Status FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        THROW;
    END CATCH
END
GO

-- LoginMembership: login with lockout. A phone number is locked while it has at least
-- Authentication.MaxFailedAttempts failed logins (since its last success) within the last
-- Authentication.LockoutDurationMinutes. Bad credentials and lockouts are results, not errors, so
-- their LoginAttempts and AuditLog rows are kept: LOGIN_SUCCESS, LOGIN_FAILED, LOGIN_BLOCKED
-- (TableName 'LoginAttempts', RecordId = the phone number), and SUSPICIOUS_ACTIVITY when a failure
-- starts a lockout.
CREATE OR ALTER PROCEDURE dbo.LoginMembership
    @PhoneNumber NVARCHAR(100),
    @SecureKey NVARCHAR(1000)
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    DECLARE @Started DATETIME2(7) = SYSUTCDATETIME();
    DECLARE @Max INT = ISNULL(TRY_CAST((SELECT ConfigValue FROM dbo.SystemConfiguration
                                        WHERE ConfigKey = N'Authentication.MaxFailedAttempts') AS INT), 5);
    DECLARE @LockoutMinutes INT = ISNULL(TRY_CAST((SELECT ConfigValue FROM dbo.SystemConfiguration
                                                   WHERE ConfigKey = N'Authentication.LockoutDurationMinutes') AS INT), 15);
    DECLARE @Failures INT;
    DECLARE @LastSuccessId BIGINT;
    DECLARE @MembershipId UNIQUEIDENTIFIER;
    DECLARE @Outcome NVARCHAR(30);
    DECLARE @Resource NVARCHAR(255) = N'dbo.LoginMembership:' + ISNULL(@PhoneNumber, N'');
    BEGIN TRY
        IF dbo.IsValidPhoneNumber(@PhoneNumber) = 0
            THROW 50030, N'Invalid phone number: expected E.164 (+ followed by 7 to 15 digits)', 1;
        IF @SecureKey IS NULL OR LEN(@SecureKey) NOT BETWEEN 8 AND 512
            THROW 50031, N'Invalid secure key: expected 8 to 512 characters', 1;
        BEGIN TRANSACTION;
        -- One login per phone number at a time, so concurrent attempts cannot pass the limit.
        EXEC sp_getapplock @Resource = @Resource, @LockMode = N'Exclusive', @LockOwner = N'Transaction';
        SELECT @LastSuccessId = MAX(Id) FROM dbo.LoginAttempts WHERE PhoneNumber = @PhoneNumber AND Outcome = N'success';
        SELECT @Failures = COUNT(*) FROM dbo.LoginAttempts
        WHERE PhoneNumber = @PhoneNumber AND Outcome = N'failed'
          AND CreatedAt > DATEADD(MINUTE, -@LockoutMinutes, SYSUTCDATETIME())
          AND Id > ISNULL(@LastSuccessId, 0);
        IF @Failures >= @Max
            SET @Outcome = N'LOCKED_OUT';
        ELSE
        BEGIN
            SELECT @MembershipId = UniqueId FROM dbo.Memberships
            WHERE PhoneNumber = @PhoneNumber AND SecureKey = @SecureKey COLLATE Latin1_General_BIN2 AND Status = N'active';
            SET @Outcome = CASE WHEN @MembershipId IS NULL THEN N'INVALID_CREDENTIALS' ELSE N'SUCCESS' END;
        END
        INSERT INTO dbo.LoginAttempts (PhoneNumber, Outcome)
        VALUES (@PhoneNumber, CASE @Outcome WHEN N'SUCCESS' THEN N'success' WHEN N'LOCKED_OUT' THEN N'blocked' ELSE N'failed' END);
        INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, NewValues)
        VALUES (N'LoginAttempts',
                CASE @Outcome WHEN N'SUCCESS' THEN N'LOGIN_SUCCESS' WHEN N'LOCKED_OUT' THEN N'LOGIN_BLOCKED' ELSE N'LOGIN_FAILED' END,
                @PhoneNumber,
                (SELECT @Outcome AS Outcome,
                        @Failures + CASE WHEN @Outcome = N'INVALID_CREDENTIALS' THEN 1 ELSE 0 END AS RecentFailures
                 FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        IF @Outcome = N'INVALID_CREDENTIALS' AND @Failures + 1 >= @Max
            INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, NewValues)
            VALUES (N'LoginAttempts', N'SUSPICIOUS_ACTIVITY', @PhoneNumber,
                    (SELECT N'lockout started' AS Reason, @Failures + 1 AS FailedAttempts, @LockoutMinutes AS LockoutMinutes
                     FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        COMMIT TRANSACTION;
        EXEC dbo.RecordPerformance N'LoginMembership', @Started, 1;
        SELECT CASE WHEN @Outcome = N'SUCCESS' THEN 1 ELSE 0 END AS Success,
               @Outcome AS Outcome,
               LOWER(CAST(@MembershipId AS NVARCHAR(36))) AS MembershipId,
               CASE @Outcome WHEN N'SUCCESS' THEN @Max WHEN N'LOCKED_OUT' THEN 0
                    ELSE CASE WHEN @Max - @Failures - 1 > 0 THEN @Max - @Failures - 1 ELSE 0 END END AS AttemptsRemaining,
               CASE @Outcome WHEN N'SUCCESS' THEN N'Login successful'
                             WHEN N'LOCKED_OUT' THEN N'Too many failed attempts: try again later'
                             ELSE N'Invalid phone number or secure key' END AS Message;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;
        INSERT INTO dbo.ErrorLog (ProcedureName, ErrorNumber, ErrorMessage, ErrorSeverity, Parameters)
        VALUES (N'LoginMembership', ERROR_NUMBER(), ERROR_MESSAGE(), ERROR_SEVERITY(),
                (SELECT @PhoneNumber AS PhoneNumber FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));  -- never the key
        THROW;
    END CATCH
END
GO

PRINT N'✅ Enhanced Membership procedures created successfully with:';
PRINT N'   - Comprehensive input validation and sanitization';
PRINT N'   - Structured error handling and logging';
PRINT N'   - Performance metrics collection';
PRINT N'   - Complete audit trail for security compliance';
PRINT N'   - Account lockout after Authentication.MaxFailedAttempts failed logins';
GO
