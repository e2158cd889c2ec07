-- Phase "procedures", step "verification-flow-procedures" (SQL Server, T-SQL, repeatable): the
-- runbook's VerificationFlowProcedures.sql. UNTESTED: see the bundle's README. CREATE OR ALTER.

-- StartVerificationFlow: a new OTP flow; it supersedes the pending flows of the same phone number
-- and purpose.
CREATE OR ALTER PROCEDURE dbo.StartVerificationFlow
    @PhoneNumber NVARCHAR(100),
    @Purpose NVARCHAR(20),
    @OtpHash NVARCHAR(1000),
    @ValidForSeconds INT
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    DECLARE @Started DATETIME2(7) = SYSUTCDATETIME();
    DECLARE @Id UNIQUEIDENTIFIER = NEWID();
    DECLARE @ExpiresAt DATETIME2(3);
    BEGIN TRY
        IF dbo.IsValidPhoneNumber(@PhoneNumber) = 0
            THROW 50030, N'Invalid phone number: expected E.164 (+ followed by 7 to 15 digits)', 1;
        IF @Purpose IS NULL OR @Purpose NOT IN (N'registration', N'login', N'recovery')
            THROW 50040, N'Invalid purpose: expected registration, login or recovery', 1;
        IF @OtpHash IS NULL OR LEN(@OtpHash) NOT BETWEEN 1 AND 512
            THROW 50041, N'Invalid OTP hash: expected 1 to 512 characters', 1;
        IF @ValidForSeconds IS NULL OR @ValidForSeconds NOT BETWEEN 30 AND 3600
            THROW 50042, N'Invalid ValidForSeconds: expected 30 to 3600', 1;
        SET @ExpiresAt = DATEADD(SECOND, @ValidForSeconds, SYSUTCDATETIME());
        BEGIN TRANSACTION;
        UPDATE dbo.VerificationFlows SET Status = N'expired', UpdatedAt = SYSUTCDATETIME()
        WHERE PhoneNumber = @PhoneNumber AND Purpose = @Purpose AND Status = N'pending';
        INSERT INTO dbo.VerificationFlows (UniqueId, PhoneNumber, Purpose, OtpHash, ExpiresAt)
        VALUES (@Id, @PhoneNumber, @Purpose, @OtpHash, @ExpiresAt);
        INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, NewValues)
        VALUES (N'VerificationFlows', N'INSERT', LOWER(CAST(@Id AS NVARCHAR(36))),
                (SELECT @PhoneNumber AS PhoneNumber, @Purpose AS Purpose, @ExpiresAt AS ExpiresAt
                 FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        COMMIT TRANSACTION;
        EXEC dbo.RecordPerformance N'StartVerificationFlow', @Started, 1;
        SELECT LOWER(CAST(@Id AS NVARCHAR(36))) AS FlowId, @ExpiresAt AS ExpiresAt;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;
        INSERT INTO dbo.ErrorLog (ProcedureName, ErrorNumber, ErrorMessage, ErrorSeverity, Parameters)
        VALUES (N'StartVerificationFlow', ERROR_NUMBER(), ERROR_MESSAGE(), ERROR_SEVERITY(),
                (SELECT @PhoneNumber AS PhoneNumber, @Purpose AS Purpose, @ValidForSeconds AS ValidForSeconds
                 FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        THROW;
    END CATCH
END
GO

-- CompleteVerificationFlow: checks an OTP, at most OTP.MaxAttempts times per flow. Outcome is
-- VERIFIED, INVALID_OTP, FAILED (the last allowed attempt failed: SUSPICIOUS_ACTIVITY), EXPIRED or
-- NOT_PENDING; wrong OTPs are results, not errors, so their attempts and audit rows are kept.
CREATE OR ALTER PROCEDURE dbo.CompleteVerificationFlow
    @FlowId NVARCHAR(100),
    @OtpHash NVARCHAR(1000)
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT ON;
    DECLARE @Started DATETIME2(7) = SYSUTCDATETIME();
    DECLARE @Max INT = ISNULL(TRY_CAST((SELECT ConfigValue FROM dbo.SystemConfiguration
                                        WHERE ConfigKey = N'OTP.MaxAttempts') AS INT), 3);
    DECLARE @Id BIGINT, @Status NVARCHAR(20), @ExpiresAt DATETIME2(3), @Hash NVARCHAR(512),
            @Attempts INT, @Phone NVARCHAR(20), @Outcome NVARCHAR(20);
    BEGIN TRY
        IF dbo.IsValidGuid(@FlowId) = 0
            THROW 50020, N'Invalid identifier: expected a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)', 1;
        BEGIN TRANSACTION;
        SELECT @Id = Id, @Status = Status, @ExpiresAt = ExpiresAt, @Hash = OtpHash, @Attempts = AttemptCount,
               @Phone = PhoneNumber
        FROM dbo.VerificationFlows WITH (UPDLOCK, HOLDLOCK)
        WHERE UniqueId = CAST(@FlowId AS UNIQUEIDENTIFIER);
        IF @Id IS NULL
            THROW 50043, N'Verification flow not found', 1;
        SET @Outcome = CASE
            WHEN @Status <> N'pending' THEN N'NOT_PENDING'
            WHEN @ExpiresAt <= SYSUTCDATETIME() THEN N'EXPIRED'
            WHEN @Hash = @OtpHash COLLATE Latin1_General_BIN2 THEN N'VERIFIED'
            WHEN @Attempts + 1 >= @Max THEN N'FAILED'
            ELSE N'INVALID_OTP' END;
        IF @Outcome <> N'NOT_PENDING'
        BEGIN
            SET @Status = CASE @Outcome WHEN N'VERIFIED' THEN N'verified' WHEN N'FAILED' THEN N'failed'
                                        WHEN N'EXPIRED' THEN N'expired' ELSE @Status END;
            SET @Attempts = @Attempts + 1;
            UPDATE dbo.VerificationFlows SET Status = @Status, AttemptCount = @Attempts, UpdatedAt = SYSUTCDATETIME()
            WHERE Id = @Id;
            INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, NewValues)
            VALUES (N'VerificationFlows', CASE @Outcome WHEN N'FAILED' THEN N'SUSPICIOUS_ACTIVITY' ELSE N'UPDATE' END,
                    LOWER(@FlowId),
                    (SELECT @Outcome AS Outcome, @Status AS Status, @Attempts AS AttemptCount, @Phone AS PhoneNumber
                     FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        END
        COMMIT TRANSACTION;
        EXEC dbo.RecordPerformance N'CompleteVerificationFlow', @Started, 1;
        SELECT CASE WHEN @Outcome = N'VERIFIED' THEN 1 ELSE 0 END AS Success, @Outcome AS Outcome, @Status AS Status,
               CASE WHEN @Max - @Attempts > 0 THEN @Max - @Attempts ELSE 0 END AS AttemptsRemaining;
    END TRY
    BEGIN CATCH
        IF @@TRANCOUNT > 0 ROLLBACK TRANSACTION;
        INSERT INTO dbo.ErrorLog (ProcedureName, ErrorNumber, ErrorMessage, ErrorSeverity, Parameters)
        VALUES (N'CompleteVerificationFlow', ERROR_NUMBER(), ERROR_MESSAGE(), ERROR_SEVERITY(),
                (SELECT @FlowId AS FlowId FOR JSON PATH, WITHOUT_ARRAY_WRAPPER));
        THROW;
    END CATCH
END
GO

PRINT N'✅ Enhanced Verification Flow procedures created successfully.';
GO
