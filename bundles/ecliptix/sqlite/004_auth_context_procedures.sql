-- Phase "procedures", step "auth-context-procedures" (SQLite, repeatable): the runbook's AuthContextProcedures.sql.
-- SQLite has no stored procedures: CreateAuthenticationContext, ValidateAuthenticationContext and
-- DeactivateAuthenticationContext are the manifest's operations of the same names (see
-- bundles/ecliptix/README.md). This step installs what they need in the database: their rows in
-- ProcedureCatalog (an operation refuses to run without its row) and the error messages of their
-- input checks (ValidationGuard triggers). Re-runnable as a whole.

DELETE FROM ProcedureCatalog WHERE StepName = 'auth-context-procedures';
INSERT INTO ProcedureCatalog (ProcedureName, StepName) VALUES
    ('CreateAuthenticationContext', 'auth-context-procedures'),
    ('ValidateAuthenticationContext', 'auth-context-procedures'),
    ('DeactivateAuthenticationContext', 'auth-context-procedures');

DROP TRIGGER IF EXISTS ValidationGuard_MembershipNotActive;
CREATE TRIGGER ValidationGuard_MembershipNotActive BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'MEMBERSHIP_NOT_ACTIVE'
BEGIN SELECT RAISE(ABORT, 'Membership not found or not active'); END;

DROP TRIGGER IF EXISTS ValidationGuard_InvalidValidityMinutes;
CREATE TRIGGER ValidationGuard_InvalidValidityMinutes BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'INVALID_VALIDITY_MINUTES'
BEGIN SELECT RAISE(ABORT, 'Invalid ValidForMinutes: expected 1 to 43200'); END;

