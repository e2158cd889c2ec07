-- Phase "baseline", step "ecliptix-schema" (SQLite).
-- The existing Ecliptix schema the production enhancements build on, kept small:
-- memberships, their authentication contexts, login attempts and OTP verification flows.
-- IF NOT EXISTS: on a database that already has these tables the step only records them.
-- Timestamps are UTC text 'YYYY-MM-DD HH:MM:SS' (CURRENT_TIMESTAMP), booleans are 0/1.

CREATE TABLE IF NOT EXISTS Memberships (
    Id          INTEGER PRIMARY KEY AUTOINCREMENT,
    UniqueId    TEXT NOT NULL UNIQUE,               -- GUID, lower case
    PhoneNumber TEXT NOT NULL UNIQUE,               -- E.164, e.g. +380501234567
    SecureKey   TEXT NOT NULL,                      -- the application's hash of the secret
    Status      TEXT NOT NULL DEFAULT 'active'
                CHECK (Status IN ('active', 'inactive', 'blocked')),
    CreatedAt   TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UpdatedAt   TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE IF NOT EXISTS AuthenticationContexts (
    Id             INTEGER PRIMARY KEY AUTOINCREMENT,
    ContextToken   TEXT NOT NULL UNIQUE,            -- GUID, lower case
    MembershipId   TEXT NOT NULL REFERENCES Memberships (UniqueId),
    IsActive       INTEGER NOT NULL DEFAULT 1 CHECK (IsActive IN (0, 1)),
    ExpiresAt      TEXT NOT NULL,
    LastAccessedAt TEXT,
    CreatedAt      TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UpdatedAt      TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX IF NOT EXISTS IX_AuthenticationContexts_MembershipId
    ON AuthenticationContexts (MembershipId, IsActive);
CREATE INDEX IF NOT EXISTS IX_AuthenticationContexts_ExpiresAt
    ON AuthenticationContexts (ExpiresAt);

CREATE TABLE IF NOT EXISTS LoginAttempts (
    Id          INTEGER PRIMARY KEY AUTOINCREMENT,
    PhoneNumber TEXT NOT NULL,
    Outcome     TEXT NOT NULL CHECK (Outcome IN ('success', 'failed', 'blocked')),
    CreatedAt   TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX IF NOT EXISTS IX_LoginAttempts_PhoneNumber
    ON LoginAttempts (PhoneNumber, Outcome, Id);

CREATE TABLE IF NOT EXISTS VerificationFlows (
    Id           INTEGER PRIMARY KEY AUTOINCREMENT,
    UniqueId     TEXT NOT NULL UNIQUE,              -- GUID, lower case
    PhoneNumber  TEXT NOT NULL,
    Purpose      TEXT NOT NULL CHECK (Purpose IN ('registration', 'login', 'recovery')),
    OtpHash      TEXT NOT NULL,
    Status       TEXT NOT NULL DEFAULT 'pending'
                 CHECK (Status IN ('pending', 'verified', 'expired', 'failed')),
    AttemptCount INTEGER NOT NULL DEFAULT 0,
    ExpiresAt    TEXT NOT NULL,
    CreatedAt    TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UpdatedAt    TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX IF NOT EXISTS IX_VerificationFlows_PhoneNumber
    ON VerificationFlows (PhoneNumber, Purpose, Status);
