-- Reverts phase "baseline" (PostgreSQL): drops the baseline tables WITH THEIR DATA, and schema dbo
-- when nothing else is left in it. Only for test and staging databases; on production restore a
-- backup instead.
DROP TABLE IF EXISTS dbo.VerificationFlows;
DROP TABLE IF EXISTS dbo.LoginAttempts;
DROP TABLE IF EXISTS dbo.AuthenticationContexts;
DROP TABLE IF EXISTS dbo.Memberships;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'dbo')
       AND NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'dbo')
       AND NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'dbo') THEN
        DROP SCHEMA IF EXISTS dbo;
    ELSE
        RAISE NOTICE 'schema dbo still holds other objects: kept';
    END IF;
END
$$;
