-- Phase "procedures", step "memberships-procedures" (PostgreSQL, repeatable): the runbook's
-- MembershipsProcedures.sql. CREATE OR REPLACE throughout, so the step can run again whenever
-- this file changes (changing a function's result columns needs a DROP FUNCTION first).

-- CreateMembership: registers a membership under a new GUID.
CREATE OR REPLACE FUNCTION dbo.CreateMembership(p_PhoneNumber text, p_SecureKey text)
RETURNS TABLE (MembershipId uuid, Status text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_Started timestamptz := clock_timestamp();
    v_Id      uuid := gen_random_uuid();
BEGIN
    IF NOT dbo.IsValidPhoneNumber(p_PhoneNumber) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'Invalid phone number: expected E.164 (+ followed by 7 to 15 digits)';
    END IF;
    IF p_SecureKey IS NULL OR length(p_SecureKey) NOT BETWEEN 8 AND 512 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'Invalid secure key: expected 8 to 512 characters';
    END IF;
    IF EXISTS (SELECT 1 FROM dbo.Memberships m WHERE m.PhoneNumber = p_PhoneNumber) THEN
        RAISE EXCEPTION USING ERRCODE = 'unique_violation', MESSAGE = 'A membership with this phone number already exists';
    END IF;
    INSERT INTO dbo.Memberships (UniqueId, PhoneNumber, SecureKey) VALUES (v_Id, p_PhoneNumber, p_SecureKey);
    INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, NewValues)
    VALUES ('Memberships', 'INSERT', v_Id::text, jsonb_build_object('PhoneNumber', p_PhoneNumber, 'Status', 'active'));
    PERFORM dbo.RecordPerformance('CreateMembership', v_Started, 1);
    RETURN QUERY SELECT v_Id, 'active'::text;
END
$$;

-- UpdateMembershipStatus: active, inactive or blocked; a membership that is no longer active loses
-- its active authentication contexts.
CREATE OR REPLACE FUNCTION dbo.UpdateMembershipStatus(p_MembershipId text, p_Status text)
RETURNS TABLE (MembershipId uuid, OldStatus text, Status text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_Started timestamptz := clock_timestamp();
    v_Old     text;
    v_Rows    integer := 0;
BEGIN
    IF NOT dbo.IsValidGuid(p_MembershipId) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'Invalid identifier: expected a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)';
    END IF;
    IF p_Status IS NULL OR p_Status NOT IN ('active', 'inactive', 'blocked') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'Invalid status: expected active, inactive or blocked';
    END IF;
    SELECT m.Status INTO v_Old FROM dbo.Memberships m WHERE m.UniqueId = p_MembershipId::uuid FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found', MESSAGE = 'Membership not found';
    END IF;
    IF v_Old <> p_Status THEN
        UPDATE dbo.Memberships m SET Status = p_Status, UpdatedAt = now() WHERE m.UniqueId = p_MembershipId::uuid;
        GET DIAGNOSTICS v_Rows = ROW_COUNT;
        INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, OldValues, NewValues)
        VALUES ('Memberships', 'UPDATE', lower(p_MembershipId), jsonb_build_object('Status', v_Old),
                jsonb_build_object('Status', p_Status));
    END IF;
    IF p_Status <> 'active' THEN
        UPDATE dbo.AuthenticationContexts c SET IsActive = 0, UpdatedAt = now()
        WHERE c.MembershipId = p_MembershipId::uuid AND c.IsActive = 1;
    END IF;
    PERFORM dbo.RecordPerformance('UpdateMembershipStatus', v_Started, v_Rows);
    RETURN QUERY SELECT p_MembershipId::uuid, v_Old, p_Status;
END
$$;

-- LoginMembership: login with lockout. A phone number is locked while it has at least
-- Authentication.MaxFailedAttempts failed logins (since its last success) within the last
-- Authentication.LockoutDurationMinutes. Bad credentials and lockouts are results, not errors, so
-- that their LoginAttempts and AuditLog rows are kept: LOGIN_SUCCESS, LOGIN_FAILED, LOGIN_BLOCKED
-- (TableName 'LoginAttempts', RecordId = the phone number), and SUSPICIOUS_ACTIVITY when a failure
-- starts a lockout.
CREATE OR REPLACE FUNCTION dbo.LoginMembership(p_PhoneNumber text, p_SecureKey text)
RETURNS TABLE (Success integer, Outcome text, MembershipId uuid, AttemptsRemaining integer, Message text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_Started        timestamptz := clock_timestamp();
    v_Max            integer := coalesce(dbo.GetConfigValue('Authentication.MaxFailedAttempts')::integer, 5);
    v_LockoutMinutes integer := coalesce(dbo.GetConfigValue('Authentication.LockoutDurationMinutes')::integer, 15);
    v_Failures       integer;
    v_MembershipId   uuid;
    v_Outcome        text;
BEGIN
    IF NOT dbo.IsValidPhoneNumber(p_PhoneNumber) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'Invalid phone number: expected E.164 (+ followed by 7 to 15 digits)';
    END IF;
    IF p_SecureKey IS NULL OR length(p_SecureKey) NOT BETWEEN 8 AND 512 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'Invalid secure key: expected 8 to 512 characters';
    END IF;
    -- One login per phone number at a time, so concurrent attempts cannot pass the limit.
    PERFORM pg_advisory_xact_lock(hashtext('dbo.LoginMembership:' || p_PhoneNumber));
    SELECT count(*) INTO v_Failures
    FROM dbo.LoginAttempts a
    WHERE a.PhoneNumber = p_PhoneNumber AND a.Outcome = 'failed'
      AND a.CreatedAt > now() - make_interval(mins => v_LockoutMinutes)
      AND a.Id > coalesce((SELECT max(s.Id) FROM dbo.LoginAttempts s
                           WHERE s.PhoneNumber = p_PhoneNumber AND s.Outcome = 'success'), 0);
    IF v_Failures >= v_Max THEN
        v_Outcome := 'LOCKED_OUT';
    ELSE
        SELECT m.UniqueId INTO v_MembershipId FROM dbo.Memberships m
        WHERE m.PhoneNumber = p_PhoneNumber AND m.SecureKey = p_SecureKey AND m.Status = 'active';
        v_Outcome := CASE WHEN v_MembershipId IS NULL THEN 'INVALID_CREDENTIALS' ELSE 'SUCCESS' END;
    END IF;
    INSERT INTO dbo.LoginAttempts (PhoneNumber, Outcome)
    VALUES (p_PhoneNumber, CASE v_Outcome WHEN 'SUCCESS' THEN 'success' WHEN 'LOCKED_OUT' THEN 'blocked' ELSE 'failed' END);
    INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, NewValues)
    VALUES ('LoginAttempts',
            CASE v_Outcome WHEN 'SUCCESS' THEN 'LOGIN_SUCCESS' WHEN 'LOCKED_OUT' THEN 'LOGIN_BLOCKED' ELSE 'LOGIN_FAILED' END,
            p_PhoneNumber,
            jsonb_build_object('Outcome', v_Outcome,
                               'RecentFailures', v_Failures + CASE WHEN v_Outcome = 'INVALID_CREDENTIALS' THEN 1 ELSE 0 END));
    IF v_Outcome = 'INVALID_CREDENTIALS' AND v_Failures + 1 >= v_Max THEN
        INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, NewValues)
        VALUES ('LoginAttempts', 'SUSPICIOUS_ACTIVITY', p_PhoneNumber,
                jsonb_build_object('Reason', 'lockout started', 'FailedAttempts', v_Failures + 1,
                                   'LockoutMinutes', v_LockoutMinutes));
    END IF;
    PERFORM dbo.RecordPerformance('LoginMembership', v_Started, 1);
    RETURN QUERY SELECT
        CASE WHEN v_Outcome = 'SUCCESS' THEN 1 ELSE 0 END,
        v_Outcome,
        v_MembershipId,
        CASE v_Outcome WHEN 'SUCCESS' THEN v_Max WHEN 'LOCKED_OUT' THEN 0 ELSE greatest(0, v_Max - v_Failures - 1) END,
        CASE v_Outcome
            WHEN 'SUCCESS' THEN 'Login successful'
            WHEN 'LOCKED_OUT' THEN 'Too many failed attempts: try again later'
            ELSE 'Invalid phone number or secure key' END;
END
$$;

DO $$
BEGIN
    RAISE NOTICE '✅ Enhanced Membership procedures created successfully with:';
    RAISE NOTICE '   - Comprehensive input validation and sanitization';
    RAISE NOTICE '   - Structured error handling and logging';
    RAISE NOTICE '   - Performance metrics collection';
    RAISE NOTICE '   - Complete audit trail for security compliance';
    RAISE NOTICE '   - Account lockout after Authentication.MaxFailedAttempts failed logins';
END
$$;
