-- Phase "baseline", step "ecliptix-schema" (SQL Server, T-SQL). UNTESTED: no SQL Server was
-- available where this bundle was written; see the bundle's README.
-- The existing Ecliptix schema the production enhancements build on, kept small. Created only
-- when missing, so on an existing Ecliptix database the step just records it.
-- Batches are separated by lines holding only GO.

IF OBJECT_ID(N'dbo.Memberships', N'U') IS NULL
    CREATE TABLE dbo.Memberships (
        Id          BIGINT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_Memberships PRIMARY KEY,
        UniqueId    UNIQUEIDENTIFIER NOT NULL CONSTRAINT UQ_Memberships_UniqueId UNIQUE,
        PhoneNumber NVARCHAR(20) NOT NULL CONSTRAINT UQ_Memberships_PhoneNumber UNIQUE,
        SecureKey   NVARCHAR(512) NOT NULL,
        Status      NVARCHAR(20) NOT NULL CONSTRAINT DF_Memberships_Status DEFAULT N'active'
                    CONSTRAINT CK_Memberships_Status CHECK (Status IN (N'active', N'inactive', N'blocked')),
        CreatedAt   DATETIME2(3) NOT NULL CONSTRAINT DF_Memberships_CreatedAt DEFAULT SYSUTCDATETIME(),
        UpdatedAt   DATETIME2(3) NOT NULL CONSTRAINT DF_Memberships_UpdatedAt DEFAULT SYSUTCDATETIME()
    );
GO

IF OBJECT_ID(N'dbo.AuthenticationContexts', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.AuthenticationContexts (
        Id             BIGINT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_AuthenticationContexts PRIMARY KEY,
        ContextToken   UNIQUEIDENTIFIER NOT NULL CONSTRAINT UQ_AuthenticationContexts_ContextToken UNIQUE,
        MembershipId   UNIQUEIDENTIFIER NOT NULL
                       CONSTRAINT FK_AuthenticationContexts_Memberships REFERENCES dbo.Memberships (UniqueId),
        IsActive       BIT NOT NULL CONSTRAINT DF_AuthenticationContexts_IsActive DEFAULT 1,
        ExpiresAt      DATETIME2(3) NOT NULL,
        LastAccessedAt DATETIME2(3) NULL,
        CreatedAt      DATETIME2(3) NOT NULL CONSTRAINT DF_AuthenticationContexts_CreatedAt DEFAULT SYSUTCDATETIME(),
        UpdatedAt      DATETIME2(3) NOT NULL CONSTRAINT DF_AuthenticationContexts_UpdatedAt DEFAULT SYSUTCDATETIME()
    );
    CREATE INDEX IX_AuthenticationContexts_MembershipId ON dbo.AuthenticationContexts (MembershipId, IsActive);
    CREATE INDEX IX_AuthenticationContexts_ExpiresAt ON dbo.AuthenticationContexts (ExpiresAt);
END
GO

IF OBJECT_ID(N'dbo.LoginAttempts', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.LoginAttempts (
        Id          BIGINT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_LoginAttempts PRIMARY KEY,
        PhoneNumber NVARCHAR(20) NOT NULL,
        Outcome     NVARCHAR(20) NOT NULL
                    CONSTRAINT CK_LoginAttempts_Outcome CHECK (Outcome IN (N'success', N'failed', N'blocked')),
        CreatedAt   DATETIME2(3) NOT NULL CONSTRAINT DF_LoginAttempts_CreatedAt DEFAULT SYSUTCDATETIME()
    );
    CREATE INDEX IX_LoginAttempts_PhoneNumber ON dbo.LoginAttempts (PhoneNumber, Outcome, Id);
END
GO

IF OBJECT_ID(N'dbo.VerificationFlows', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.VerificationFlows (
        Id           BIGINT IDENTITY(1, 1) NOT NULL CONSTRAINT PK_VerificationFlows PRIMARY KEY,
        UniqueId     UNIQUEIDENTIFIER NOT NULL CONSTRAINT UQ_VerificationFlows_UniqueId UNIQUE,
        PhoneNumber  NVARCHAR(20) NOT NULL,
        Purpose      NVARCHAR(20) NOT NULL
                     CONSTRAINT CK_VerificationFlows_Purpose CHECK (Purpose IN (N'registration', N'login', N'recovery')),
        OtpHash      NVARCHAR(512) NOT NULL,
        Status       NVARCHAR(20) NOT NULL CONSTRAINT DF_VerificationFlows_Status DEFAULT N'pending'
                     CONSTRAINT CK_VerificationFlows_Status CHECK (Status IN (N'pending', N'verified', N'expired', N'failed')),
        AttemptCount INT NOT NULL CONSTRAINT DF_VerificationFlows_AttemptCount DEFAULT 0,
        ExpiresAt    DATETIME2(3) NOT NULL,
        CreatedAt    DATETIME2(3) NOT NULL CONSTRAINT DF_VerificationFlows_CreatedAt DEFAULT SYSUTCDATETIME(),
        UpdatedAt    DATETIME2(3) NOT NULL CONSTRAINT DF_VerificationFlows_UpdatedAt DEFAULT SYSUTCDATETIME()
    );
    CREATE INDEX IX_VerificationFlows_PhoneNumber ON dbo.VerificationFlows (PhoneNumber, Purpose, Status);
END
GO
