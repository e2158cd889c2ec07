-- Phase "procedures", step "auth-context-procedures" (PostgreSQL, repeatable): the runbook's
-- AuthContextProcedures.sql. CREATE OR REPLACE throughout, so the step can run again whenever
-- this file changes (changing a function's result columns needs a DROP FUNCTION first).
-- Each procedure validates its input (invalid input raises), writes AuditLog rows and, when
-- Monitoring.EnableMetrics = '1', a PerformanceMetrics row.

-- CreateAuthenticationContext: opens a context (session) for an active membership.
CREATE OR REPLACE FUNCTION dbo.CreateAuthenticationContext(p_MembershipId text, p_ValidForMinutes integer)
RETURNS TABLE (ContextToken uuid, ExpiresAt timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_Started   timestamptz := clock_timestamp();
    v_Token     uuid := gen_random_uuid();
    v_ExpiresAt timestamptz;
BEGIN
    IF NOT dbo.IsValidGuid(p_MembershipId) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'Invalid identifier: expected a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)';
    END IF;
    IF p_ValidForMinutes IS NULL OR p_ValidForMinutes NOT BETWEEN 1 AND 43200 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'Invalid ValidForMinutes: expected 1 to 43200';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM dbo.Memberships m WHERE m.UniqueId = p_MembershipId::uuid AND m.Status = 'active') THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found', MESSAGE = 'Membership not found or not active';
    END IF;
    v_ExpiresAt := now() + make_interval(mins => p_ValidForMinutes);
    INSERT INTO dbo.AuthenticationContexts (ContextToken, MembershipId, ExpiresAt)
    VALUES (v_Token, p_MembershipId::uuid, v_ExpiresAt);
    INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, NewValues)
    VALUES ('AuthenticationContexts', 'INSERT', v_Token::text,
            jsonb_build_object('MembershipId', p_MembershipId::uuid, 'ExpiresAt', v_ExpiresAt));
    PERFORM dbo.RecordPerformance('CreateAuthenticationContext', v_Started, 1);
    RETURN QUERY SELECT v_Token, v_ExpiresAt;
END
$$;

-- ValidateAuthenticationContext: IsValid = 1 for an active, unexpired context; an expired context
-- is deactivated the first time it is presented.
CREATE OR REPLACE FUNCTION dbo.ValidateAuthenticationContext(p_ContextToken text)
RETURNS TABLE (IsValid integer, MembershipId uuid, ExpiresAt timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_Started timestamptz := clock_timestamp();
    v_Expired integer;
BEGIN
    IF NOT dbo.IsValidGuid(p_ContextToken) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'Invalid identifier: expected a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)';
    END IF;
    UPDATE dbo.AuthenticationContexts c SET IsActive = 0, UpdatedAt = now()
    WHERE c.ContextToken = p_ContextToken::uuid AND c.IsActive = 1 AND c.ExpiresAt <= now();
    GET DIAGNOSTICS v_Expired = ROW_COUNT;
    IF v_Expired > 0 THEN
        INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, OldValues, NewValues)
        VALUES ('AuthenticationContexts', 'UPDATE', lower(p_ContextToken), jsonb_build_object('IsActive', 1),
                jsonb_build_object('IsActive', 0, 'Reason', 'expired'));
    END IF;
    UPDATE dbo.AuthenticationContexts c SET LastAccessedAt = now()
    WHERE c.ContextToken = p_ContextToken::uuid AND c.IsActive = 1;
    PERFORM dbo.RecordPerformance('ValidateAuthenticationContext', v_Started, v_Expired);
    RETURN QUERY
        SELECT CASE WHEN c.Id IS NULL THEN 0 ELSE 1 END, c.MembershipId, c.ExpiresAt
        FROM (SELECT 1) AS one
        LEFT JOIN dbo.AuthenticationContexts c ON c.ContextToken = p_ContextToken::uuid AND c.IsActive = 1;
END
$$;

-- DeactivateAuthenticationContext: logout; Deactivated = 1 when the context was active.
CREATE OR REPLACE FUNCTION dbo.DeactivateAuthenticationContext(p_ContextToken text)
RETURNS TABLE (Deactivated integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_Started timestamptz := clock_timestamp();
    v_Rows    integer;
BEGIN
    IF NOT dbo.IsValidGuid(p_ContextToken) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'Invalid identifier: expected a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)';
    END IF;
    UPDATE dbo.AuthenticationContexts c SET IsActive = 0, UpdatedAt = now()
    WHERE c.ContextToken = p_ContextToken::uuid AND c.IsActive = 1;
    GET DIAGNOSTICS v_Rows = ROW_COUNT;
    IF v_Rows > 0 THEN
        INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, OldValues, NewValues)
        VALUES ('AuthenticationContexts', 'UPDATE', lower(p_ContextToken), jsonb_build_object('IsActive', 1),
                jsonb_build_object('IsActive', 0, 'Reason', 'deactivated'));
    END IF;
    PERFORM dbo.RecordPerformance('DeactivateAuthenticationContext', v_Started, v_Rows);
    RETURN QUERY SELECT v_Rows;
END
$$;

DO $$
BEGIN
    RAISE NOTICE '✅ Enhanced Authentication Context procedures created successfully with:';
    RAISE NOTICE '   - Comprehensive input validation and sanitization';
    RAISE NOTICE '   - Structured error handling and logging';
    RAISE NOTICE '   - Performance metrics collection';
    RAISE NOTICE '   - Complete audit trail for security compliance';
END
$$;
