-- Reverts phase "baseline" (SQL Server, UNTESTED): drops the baseline tables WITH THEIR DATA.
-- Only for test and staging databases; on production restore a backup instead.
DROP TABLE IF EXISTS dbo.VerificationFlows;
DROP TABLE IF EXISTS dbo.LoginAttempts;
DROP TABLE IF EXISTS dbo.AuthenticationContexts;
DROP TABLE IF EXISTS dbo.Memberships;
GO
