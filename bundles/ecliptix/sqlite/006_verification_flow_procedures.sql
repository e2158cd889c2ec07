-- Phase "procedures", step "verification-flow-procedures" (SQLite, repeatable): the runbook's VerificationFlowProcedures.sql.
-- SQLite has no stored procedures: StartVerificationFlow and CompleteVerificationFlow are the
-- manifest's operations of the same names (see bundles/ecliptix/README.md). This step installs what
-- they need in the database: their rows in ProcedureCatalog (an operation refuses to run without
-- its row) and the error messages of their input checks (ValidationGuard triggers). Re-runnable as
-- a whole.

DELETE FROM ProcedureCatalog WHERE StepName = 'verification-flow-procedures';
INSERT INTO ProcedureCatalog (ProcedureName, StepName) VALUES
    ('StartVerificationFlow', 'verification-flow-procedures'),
    ('CompleteVerificationFlow', 'verification-flow-procedures');

DROP TRIGGER IF EXISTS ValidationGuard_InvalidPurpose;
CREATE TRIGGER ValidationGuard_InvalidPurpose BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'INVALID_PURPOSE'
BEGIN SELECT RAISE(ABORT, 'Invalid purpose: expected registration, login or recovery'); END;

DROP TRIGGER IF EXISTS ValidationGuard_InvalidOtpHash;
CREATE TRIGGER ValidationGuard_InvalidOtpHash BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'INVALID_OTP_HASH'
BEGIN SELECT RAISE(ABORT, 'Invalid OTP hash: expected 1 to 512 characters'); END;

DROP TRIGGER IF EXISTS ValidationGuard_InvalidValiditySeconds;
CREATE TRIGGER ValidationGuard_InvalidValiditySeconds BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'INVALID_VALIDITY_SECONDS'
BEGIN SELECT RAISE(ABORT, 'Invalid ValidForSeconds: expected 30 to 3600'); END;

DROP TRIGGER IF EXISTS ValidationGuard_FlowNotFound;
CREATE TRIGGER ValidationGuard_FlowNotFound BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'FLOW_NOT_FOUND'
BEGIN SELECT RAISE(ABORT, 'Verification flow not found'); END;

