-- Phase "procedures", step "core-functions" (SQLite, repeatable): the runbook's CoreFunctions.sql.
-- SQLite has no stored procedures: GetCircuitBreakerState and RecordCircuitBreakerResult (the
-- circuit breaker over CircuitBreakerState) are the manifest's operations of the same names (see
-- bundles/ecliptix/README.md). This step installs what they need in the database: their rows in
-- ProcedureCatalog (an operation refuses to run without its row) and the error messages of their
-- input checks (ValidationGuard triggers). Re-runnable as a whole.

DELETE FROM ProcedureCatalog WHERE StepName = 'core-functions';
INSERT INTO ProcedureCatalog (ProcedureName, StepName) VALUES
    ('GetCircuitBreakerState', 'core-functions'),
    ('RecordCircuitBreakerResult', 'core-functions');

DROP TRIGGER IF EXISTS ValidationGuard_InvalidCircuitName;
CREATE TRIGGER ValidationGuard_InvalidCircuitName BEFORE INSERT ON ValidationGuard
WHEN NEW.Code = 'INVALID_CIRCUIT_NAME'
BEGIN SELECT RAISE(ABORT, 'Invalid circuit breaker name: expected 1 to 128 characters'); END;

