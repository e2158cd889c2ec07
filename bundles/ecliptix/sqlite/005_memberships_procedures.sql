-- Phase "procedures", step "memberships-procedures" (SQLite, repeatable): the runbook's MembershipsProcedures.sql.
-- SQLite has no stored procedures: CreateMembership, UpdateMembershipStatus and LoginMembership are
-- the manifest's operations of the same names (see bundles/ecliptix/README.md). This step installs
-- what they need in the database: their rows in ProcedureCatalog (an operation refuses to run
-- without its row) and the error messages of their input checks (ValidationGuard triggers).
-- Re-runnable as a whole.

DELETE FROM ProcedureCatalog WHERE StepName = 'memberships-procedures';
INSERT INTO ProcedureCatalog (ProcedureName, StepName) VALUES
    ('CreateMembership', 'memberships-procedures'),
    ('UpdateMembershipStatus', 'memberships-procedures'),
    ('LoginMembership', 'memberships-procedures');

DROP TRIGGER IF EXISTS ValidationGuard_InvalidSecureKey;
CREATE TRIGGER ValidationGuard_InvalidSecureKey BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'INVALID_SECURE_KEY'
BEGIN SELECT RAISE(ABORT, 'Invalid secure key: expected 8 to 512 characters'); END;

DROP TRIGGER IF EXISTS ValidationGuard_PhoneAlreadyRegistered;
CREATE TRIGGER ValidationGuard_PhoneAlreadyRegistered BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'PHONE_ALREADY_REGISTERED'
BEGIN SELECT RAISE(ABORT, 'A membership with this phone number already exists'); END;

DROP TRIGGER IF EXISTS ValidationGuard_MembershipNotFound;
CREATE TRIGGER ValidationGuard_MembershipNotFound BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'MEMBERSHIP_NOT_FOUND'
BEGIN SELECT RAISE(ABORT, 'Membership not found'); END;

DROP TRIGGER IF EXISTS ValidationGuard_InvalidStatus;
CREATE TRIGGER ValidationGuard_InvalidStatus BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'INVALID_STATUS'
BEGIN SELECT RAISE(ABORT, 'Invalid status: expected active, inactive or blocked'); END;

