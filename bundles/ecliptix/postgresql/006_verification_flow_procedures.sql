-- Phase "procedures", step "verification-flow-procedures" (PostgreSQL, repeatable): the runbook's
-- VerificationFlowProcedures.sql. CREATE OR REPLACE throughout (re-runnable).

-- StartVerificationFlow: a new OTP flow; it supersedes the pending flows of the same phone number
-- and purpose.
CREATE OR REPLACE FUNCTION dbo.StartVerificationFlow(p_PhoneNumber text, p_Purpose text, p_OtpHash text,
                                                     p_ValidForSeconds integer)
RETURNS TABLE (FlowId uuid, ExpiresAt timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_Started   timestamptz := clock_timestamp();
    v_Id        uuid := gen_random_uuid();
    v_ExpiresAt timestamptz;
BEGIN
    IF NOT dbo.IsValidPhoneNumber(p_PhoneNumber) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'Invalid phone number: expected E.164 (+ followed by 7 to 15 digits)';
    END IF;
    IF p_Purpose IS NULL OR p_Purpose NOT IN ('registration', 'login', 'recovery') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'Invalid purpose: expected registration, login or recovery';
    END IF;
    IF p_OtpHash IS NULL OR length(p_OtpHash) NOT BETWEEN 1 AND 512 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'Invalid OTP hash: expected 1 to 512 characters';
    END IF;
    IF p_ValidForSeconds IS NULL OR p_ValidForSeconds NOT BETWEEN 30 AND 3600 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'Invalid ValidForSeconds: expected 30 to 3600';
    END IF;
    UPDATE dbo.VerificationFlows f SET Status = 'expired', UpdatedAt = now()
    WHERE f.PhoneNumber = p_PhoneNumber AND f.Purpose = p_Purpose AND f.Status = 'pending';
    v_ExpiresAt := now() + make_interval(secs => p_ValidForSeconds);
    INSERT INTO dbo.VerificationFlows (UniqueId, PhoneNumber, Purpose, OtpHash, ExpiresAt)
    VALUES (v_Id, p_PhoneNumber, p_Purpose, p_OtpHash, v_ExpiresAt);
    INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, NewValues)
    VALUES ('VerificationFlows', 'INSERT', v_Id::text,
            jsonb_build_object('PhoneNumber', p_PhoneNumber, 'Purpose', p_Purpose, 'ExpiresAt', v_ExpiresAt));
    PERFORM dbo.RecordPerformance('StartVerificationFlow', v_Started, 1);
    RETURN QUERY SELECT v_Id, v_ExpiresAt;
END
$$;

-- CompleteVerificationFlow: checks an OTP, at most OTP.MaxAttempts times per flow. Outcome is
-- VERIFIED, INVALID_OTP, FAILED (the last allowed attempt failed: SUSPICIOUS_ACTIVITY), EXPIRED or
-- NOT_PENDING; wrong OTPs are results, not errors, so their attempts and audit rows are kept.
CREATE OR REPLACE FUNCTION dbo.CompleteVerificationFlow(p_FlowId text, p_OtpHash text)
RETURNS TABLE (Success integer, Outcome text, Status text, AttemptsRemaining integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_Started timestamptz := clock_timestamp();
    v_Max     integer := coalesce(dbo.GetConfigValue('OTP.MaxAttempts')::integer, 3);
    v_Flow    dbo.VerificationFlows%ROWTYPE;
    v_Outcome text;
BEGIN
    IF NOT dbo.IsValidGuid(p_FlowId) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'Invalid identifier: expected a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)';
    END IF;
    SELECT * INTO v_Flow FROM dbo.VerificationFlows f WHERE f.UniqueId = p_FlowId::uuid FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'no_data_found', MESSAGE = 'Verification flow not found';
    END IF;
    v_Outcome := CASE
        WHEN v_Flow.Status <> 'pending' THEN 'NOT_PENDING'
        WHEN v_Flow.ExpiresAt <= now() THEN 'EXPIRED'
        WHEN v_Flow.OtpHash = p_OtpHash THEN 'VERIFIED'
        WHEN v_Flow.AttemptCount + 1 >= v_Max THEN 'FAILED'
        ELSE 'INVALID_OTP' END;
    IF v_Outcome <> 'NOT_PENDING' THEN
        UPDATE dbo.VerificationFlows f
        SET Status = CASE v_Outcome WHEN 'VERIFIED' THEN 'verified' WHEN 'FAILED' THEN 'failed'
                                    WHEN 'EXPIRED' THEN 'expired' ELSE f.Status END,
            AttemptCount = f.AttemptCount + 1,
            UpdatedAt = now()
        WHERE f.Id = v_Flow.Id
        RETURNING * INTO v_Flow;
        INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, NewValues)
        VALUES ('VerificationFlows', CASE v_Outcome WHEN 'FAILED' THEN 'SUSPICIOUS_ACTIVITY' ELSE 'UPDATE' END,
                v_Flow.UniqueId::text,
                jsonb_build_object('Outcome', v_Outcome, 'Status', v_Flow.Status, 'AttemptCount', v_Flow.AttemptCount,
                                   'PhoneNumber', v_Flow.PhoneNumber));
    END IF;
    PERFORM dbo.RecordPerformance('CompleteVerificationFlow', v_Started, 1);
    RETURN QUERY SELECT CASE WHEN v_Outcome = 'VERIFIED' THEN 1 ELSE 0 END, v_Outcome, v_Flow.Status,
                        greatest(0, v_Max - v_Flow.AttemptCount);
END
$$;

DO $$
BEGIN
    RAISE NOTICE '✅ Enhanced Verification Flow procedures created successfully.';
END
$$;
