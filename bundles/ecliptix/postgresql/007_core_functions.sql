-- Phase "procedures", step "core-functions" (PostgreSQL, repeatable): the runbook's
-- CoreFunctions.sql: the circuit breaker over dbo.CircuitBreakerState. A circuit opens after
-- CircuitBreaker.FailureThreshold failures in a row, lets one trial call through (half_open) after
-- CircuitBreaker.OpenDurationSeconds, closes on a success and opens again on a failed trial.

CREATE OR REPLACE FUNCTION dbo.GetCircuitBreakerState(p_Name text)
RETURNS TABLE (State text, FailureCount integer, AllowRequest integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_OpenSeconds integer := coalesce(dbo.GetConfigValue('CircuitBreaker.OpenDurationSeconds')::integer, 60);
    v_Rows        integer;
BEGIN
    IF p_Name IS NULL OR length(trim(p_Name)) = 0 OR length(p_Name) > 128 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'Invalid circuit breaker name: expected 1 to 128 characters';
    END IF;
    UPDATE dbo.CircuitBreakerState c SET State = 'half_open', UpdatedAt = now()
    WHERE c.Name = p_Name AND c.State = 'open' AND c.OpenedAt <= now() - make_interval(secs => v_OpenSeconds);
    GET DIAGNOSTICS v_Rows = ROW_COUNT;
    IF v_Rows > 0 THEN
        INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, OldValues, NewValues)
        VALUES ('CircuitBreakerState', 'UPDATE', p_Name, jsonb_build_object('State', 'open'),
                jsonb_build_object('State', 'half_open'));
    END IF;
    RETURN QUERY
        SELECT coalesce(c.State, 'closed'), coalesce(c.FailureCount, 0),
               CASE WHEN coalesce(c.State, 'closed') = 'open' THEN 0 ELSE 1 END
        FROM (SELECT 1) AS one LEFT JOIN dbo.CircuitBreakerState c ON c.Name = p_Name;
END
$$;

CREATE OR REPLACE FUNCTION dbo.RecordCircuitBreakerResult(p_Name text, p_Succeeded boolean)
RETURNS TABLE (State text, FailureCount integer)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_Started   timestamptz := clock_timestamp();
    v_Threshold integer := coalesce(dbo.GetConfigValue('CircuitBreaker.FailureThreshold')::integer, 5);
    v_OldState  text;
    v_NewState  text;
    v_Failures  integer;
BEGIN
    IF p_Name IS NULL OR length(trim(p_Name)) = 0 OR length(p_Name) > 128 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'Invalid circuit breaker name: expected 1 to 128 characters';
    END IF;
    INSERT INTO dbo.CircuitBreakerState (Name) VALUES (p_Name) ON CONFLICT (Name) DO NOTHING;
    SELECT c.State, c.FailureCount INTO v_OldState, v_Failures
    FROM dbo.CircuitBreakerState c WHERE c.Name = p_Name FOR UPDATE;
    IF coalesce(p_Succeeded, false) THEN
        v_NewState := 'closed';
        v_Failures := 0;
    ELSE
        v_Failures := v_Failures + 1;
        v_NewState := CASE WHEN v_OldState = 'half_open' OR v_Failures >= v_Threshold THEN 'open' ELSE v_OldState END;
    END IF;
    UPDATE dbo.CircuitBreakerState c
    SET State = v_NewState,
        FailureCount = v_Failures,
        LastFailureAt = CASE WHEN coalesce(p_Succeeded, false) THEN c.LastFailureAt ELSE now() END,
        OpenedAt = CASE WHEN v_NewState = 'open' AND v_OldState <> 'open' THEN now()
                        WHEN v_NewState = 'open' THEN c.OpenedAt END,
        UpdatedAt = now()
    WHERE c.Name = p_Name;
    IF v_NewState <> v_OldState AND v_NewState IN ('open', 'closed') THEN
        INSERT INTO dbo.AuditLog (TableName, OperationType, RecordId, OldValues, NewValues)
        VALUES ('CircuitBreakerState', CASE v_NewState WHEN 'open' THEN 'CIRCUIT_OPENED' ELSE 'CIRCUIT_CLOSED' END, p_Name,
                jsonb_build_object('State', v_OldState), jsonb_build_object('State', v_NewState, 'FailureCount', v_Failures));
    END IF;
    PERFORM dbo.RecordPerformance('RecordCircuitBreakerResult', v_Started, 1);
    RETURN QUERY SELECT v_NewState, v_Failures;
END
$$;

DO $$
BEGIN
    RAISE NOTICE '✅ Enhanced core functions created successfully (circuit breaker).';
END
$$;
