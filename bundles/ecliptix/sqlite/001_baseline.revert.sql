-- Reverts phase "baseline" (SQLite): drops the baseline tables WITH THEIR DATA.
-- Only for test and staging databases; on production restore a backup instead.
DROP TABLE IF EXISTS VerificationFlows;
DROP TABLE IF EXISTS LoginAttempts;
DROP TABLE IF EXISTS AuthenticationContexts;
DROP TABLE IF EXISTS Memberships;
