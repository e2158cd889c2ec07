#!/usr/bin/env bash
# Checks the Ecliptix reference bundle (bundles/ecliptix) against a real database, with the
# engine's own command-line client (sqlite3 or psql), without the agent:
#   1. applies every step in manifest order, each in one transaction, and checks its verify query;
#   2. runs the runbook's post-deployment validation (GetConfigValue, SystemConfiguration count,
#      recent AuditLog rows) and exercises every operation: memberships, authentication contexts,
#      login with lockout, verification flows, circuit breaker, configuration, cleanups, refusals;
#   3. runs the runbook's monitoring queries (dialect versions, as in bundles/ecliptix/README.md);
#   4. re-applies the repeatable steps, reverts every step in reverse order and checks the bundle's
#      objects are gone, applies everything again, and reverts again (KEEP=1 keeps it applied).
#
# Operation SQL comes from the manifest; its :Name parameters are replaced by literals here, in
# this test only (the agent binds them).
#
# Usage:
#   tests/bundles/verify_bundle.sh sqlite [FILE]       a fresh temporary file when FILE is omitted
#   tests/bundles/verify_bundle.sh postgresql URL      e.g. postgresql://postgres@127.0.0.1:55434/postgres
#                                                      (the database must not have a "dbo" schema)
# Environment: BUNDLE_DIR (default: bundles/ecliptix next to this script), KEEP=1.
# Exit status: 0 when every check passed, 1 otherwise, 2 for a bad command line.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bundle="${BUNDLE_DIR:-$here/../../bundles/ecliptix}"
manifest="$bundle/manifest.textproto"
dialect="${1:-}"
target="${2:-}"
python="$(command -v python3 || true)"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
[[ "$dialect" == sqlite || "$dialect" == postgresql ]] || usage
[[ "$dialect" == sqlite || -n "$target" ]] || usage
[[ -n "$python" ]] || { echo "python3 is required (to read the manifest)" >&2; exit 2; }
[[ -f "$manifest" ]] || { echo "no manifest at $manifest" >&2; exit 2; }

work="$(mktemp -d)"
cleanup_work() { rm -rf "$work"; }
trap cleanup_work EXIT
if [[ "$dialect" == sqlite ]]; then
  command -v sqlite3 >/dev/null || { echo "sqlite3 is required (apt-get install sqlite3)" >&2; exit 2; }
  if [[ -z "$target" ]]; then target="$work/ecliptix.db"; fi
  if [[ -e "$target" ]]; then echo "refusing to use an existing file: $target" >&2; exit 2; fi
else
  command -v psql >/dev/null || { echo "psql is required (apt-get install postgresql-client)" >&2; exit 2; }
fi

# --- Reading the manifest (protobuf text format; the subset manifests use) ---------------------
cat > "$work/manifest.py" <<'PY'
import re, sys

def tokens(text):
    pattern = re.compile(r'\s+|#[^\n]*|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|[{}:;,\[\]<>]|[^\s{}:;,"\'#\[\]<>]+')
    for m in pattern.finditer(text):
        t = m.group(0)
        if not t.strip() or t.startswith('#'):
            continue
        yield t

def unquote(t):
    body, out, i = t[1:-1].encode('utf-8'), bytearray(), 0
    simple = {ord('n'): 10, ord('t'): 9, ord('r'): 13, ord('\\'): 92, ord('"'): 34, ord("'"): 39, ord('0'): 0}
    while i < len(body):
        c = body[i]
        if c == 92:
            n = body[i + 1]
            if n == ord('x'):
                out.append(int(body[i + 2:i + 4], 16)); i += 4; continue
            if ord('0') <= n <= ord('7') and i + 3 < len(body) + 1 and all(ord('0') <= d <= ord('7') for d in body[i + 1:i + 4]):
                out.append(int(body[i + 1:i + 4], 8)); i += 4; continue
            out.append(simple[n]); i += 2; continue
        out.append(c); i += 1
    return out.decode('utf-8')

def parse(toks, i=0, end=None):
    fields = []
    while i < len(toks) and toks[i] != end:
        name = toks[i]; i += 1
        if toks[i] == ':': i += 1
        if toks[i] == '{':
            value, i = parse(toks, i + 1, '}'); i += 1
        elif toks[i][0] in '"\'':
            value = ''
            while i < len(toks) and toks[i][0] in '"\'':
                value += unquote(toks[i]); i += 1
        else:
            value = toks[i]; i += 1
        if i < len(toks) and toks[i] in (';', ','): i += 1
        fields.append((name, value))
    return fields, i

def get(msg, name, default=''):
    for k, v in msg:
        if k == name: return v
    return default

def every(msg, name): return [v for k, v in msg if k == name]

manifest, _ = parse(list(tokens(open(sys.argv[1], encoding='utf-8').read())))
command, dialect = sys.argv[2], sys.argv[3]

if command == 'steps':
    # One line per step: phase, step, kind, sql file, revert file (tab separated).
    for phase in every(manifest, 'phases'):
        for step in every(phase, 'steps'):
            print('\t'.join([get(phase, 'name'), get(step, 'name'), get(step, 'kind'),
                             get(get(step, 'sql', []), dialect), get(get(step, 'revert', []), dialect)]))
elif command in ('verify', 'expect', 'message'):
    phase_name, step_name = sys.argv[4], sys.argv[5]
    for phase in every(manifest, 'phases'):
        for step in every(phase, 'steps'):
            if get(phase, 'name') == phase_name and get(step, 'name') == step_name:
                verify = get(step, 'verify', [])
                if command == 'verify': print(get(get(verify, 'query', []), dialect))
                elif command == 'expect': print(get(verify, 'expect'))
                else: print(get(step, 'success_message'))
elif command == 'operations':
    print('\n'.join(get(op, 'name') for op in every(manifest, 'operations')))
elif command == 'op':
    # The operation's SQL with each :Name replaced by a literal of the parameter's type.
    name, args = sys.argv[4], dict(a.split('=', 1) for a in sys.argv[5:])
    ops = [op for op in every(manifest, 'operations') if get(op, 'name') == name]
    if not ops: sys.exit('no operation ' + name)
    sql = get(get(ops[0], 'sql', []), dialect)
    for p in every(ops[0], 'parameters'):
        pname, ptype = get(p, 'name'), get(p, 'type')
        default = get(p, 'default_value', None)
        if pname not in args and default is None: sys.exit(f'operation {name} needs {pname}')
        value = args.pop(pname) if pname in args else default
        if ptype == 'int': literal = str(int(value))
        elif ptype == 'bool': literal = '1' if value.lower() in ('1', 'true', 'yes') else '0'
        else: literal = "'" + value.replace("'", "''") + "'"
        sql = re.sub(r'(?<![:\w]):' + pname + r'(?!\w)', lambda m: literal, sql)
    if args: sys.exit(f'operation {name} has no parameter {", ".join(args)}')
    print(sql)
PY
mf() { "$python" "$work/manifest.py" "$manifest" "$@"; }

# --- The database -----------------------------------------------------------------------------
# run_file FILE: one transaction; run_sql SQL: one transaction, prints rows ('|' between columns).
if [[ "$dialect" == sqlite ]]; then
  run_file() { { echo 'BEGIN;'; cat "$1"; printf '\nCOMMIT;\n'; } | sqlite3 -bail "$target"; }
  run_sql() { printf 'BEGIN;\n%s\n;\nCOMMIT;\n' "$1" | sqlite3 -bail "$target"; }
  list_objects() {
    sqlite3 "$target" "SELECT type || ' ' || name FROM sqlite_master
                       WHERE name NOT LIKE 'sqlite_%' AND name <> 'ecliptix_schema_history' ORDER BY 1"
  }
else
  export PGCONNECT_TIMEOUT=10
  psql_() { psql -X -q -v ON_ERROR_STOP=1 -d "$target" "$@"; }
  run_file() { psql_ -1 -f "$1" 2>&1 | sed 's/^/    /'; return "${PIPESTATUS[0]}"; }
  run_sql() { psql_ -1 -t -A -c "$1"; }
  list_objects() {
    psql_ -t -A -c "SELECT 'schema dbo' FROM pg_namespace WHERE nspname = 'dbo'
                    UNION ALL SELECT c.relkind::text || ' ' || c.relname FROM pg_class c
                      JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'dbo'
                    UNION ALL SELECT 'function ' || p.proname FROM pg_proc p
                      JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'dbo'"
  }
  if [[ -n "$(psql_ -t -A -c "SELECT 1 FROM pg_namespace WHERE nspname = 'dbo'")" ]]; then
    echo "the database already has a dbo schema; use a fresh database" >&2; exit 2
  fi
fi

failures=0
pass() { printf '  ok    %s\n' "$1"; }
fail() { printf '  FAIL  %s\n' "$1"; failures=$((failures + 1)); }

# check DESCRIPTION EXPECTED SQL: the first column of the first row equals EXPECTED.
check() {
  local got
  if ! got="$(run_sql "$3" 2>&1)"; then fail "$1: error: $got"; return; fi
  got="${got%%$'\n'*}"; got="${got%%|*}"
  if [[ "$got" == "$2" ]]; then pass "$1"; else fail "$1: expected '$2', got '$got'"; fi
}
# call OPERATION Name=Value...: runs the operation, prints its rows.
call() { local sql; sql="$(mf op "$dialect" "$@")" || return 1; run_sql "$sql"; }
# expect_call DESCRIPTION PATTERN OPERATION ARGS...: the call succeeds and its rows match PATTERN.
expect_call() {
  local description="$1" pattern="$2" got; shift 2
  if ! got="$(call "$@" 2>&1)"; then fail "$description: error: $got"; return; fi
  if [[ "$got" =~ $pattern ]]; then pass "$description"; else fail "$description: got '$got', wanted /$pattern/"; fi
  last="$got"
}
# expect_refused DESCRIPTION MESSAGE OPERATION ARGS...: the call fails with MESSAGE in its error.
expect_refused() {
  local description="$1" message="$2" got; shift 2
  if got="$(call "$@" 2>&1)"; then fail "$description: succeeded: $got"; return; fi
  if [[ "$got" == *"$message"* ]]; then pass "$description"; else fail "$description: error was '$got'"; fi
}

mapfile -t steps < <(mf steps "$dialect")

# The deployment validation must fail, and leave nothing behind, when a configuration key is missing.
refuse_incomplete_deployment() {
  local delete="DELETE FROM ${p}SystemConfiguration WHERE ConfigKey = 'Audit.LogValidations';" out
  if [[ "$dialect" == sqlite ]]; then
    out="$({ echo 'BEGIN;'; echo "$delete"; cat "$1"; printf '\nCOMMIT;\n'; } | sqlite3 -bail "$target" 2>&1)"
  else
    out="$(psql_ -1 -c "$delete" -f "$1" 2>&1)"
  fi
  if [[ $? -eq 0 || "$out" != *"Deployment validation failed"* ]]; then
    fail "deployment-validation refuses a missing configuration key: $out"
  else
    pass "deployment-validation refuses a missing configuration key"
  fi
  check "  ... and the refused step left the configuration intact" 1 "SELECT COUNT(*) FROM ${p}SystemConfiguration WHERE ConfigKey = 'Audit.LogValidations'"
}

apply_steps() { # [REPEATABLE]: only repeatable steps
  local line phase step kind file revert
  for line in "${steps[@]}"; do
    IFS=$'\t' read -r phase step kind file revert <<<"$line"
    [[ "${1:-}" == REPEATABLE && "$kind" != STEP_KIND_REPEATABLE ]] && continue
    if [[ "$step" == deployment-validation && -z "${validation_refusal_checked:-}" ]]; then
      validation_refusal_checked=1
      refuse_incomplete_deployment "$bundle/$file"
    fi
    if run_file "$bundle/$file" >"$work/out" 2>&1; then
      [[ -s "$work/out" ]] && cat "$work/out"
      pass "apply $phase/$step ($file)"
    else
      cat "$work/out"; fail "apply $phase/$step ($file)"; return 1
    fi
    check "verify $phase/$step" "$(mf expect "$dialect" "$phase" "$step")" "$(mf verify "$dialect" "$phase" "$step")"
  done
}

revert_steps() {
  local i phase step kind file revert
  for ((i = ${#steps[@]} - 1; i >= 0; i--)); do
    IFS=$'\t' read -r phase step kind file revert <<<"${steps[i]}"
    if run_file "$bundle/$revert" >"$work/out" 2>&1; then pass "revert $phase/$step ($revert)"
    else cat "$work/out"; fail "revert $phase/$step ($revert)"; return 1; fi
  done
}

# The runbook's queries in this dialect: only the date arithmetic differs (and TOP n is LIMIT n;
# SQLite has no dbo schema).
if [[ "$dialect" == sqlite ]]; then
  p=""; ago() { echo "datetime('now', '-$1 $2')"; }
else
  p="dbo."; ago() { echo "now() - interval '$1 $2'"; }
fi

echo "== Ecliptix bundle on $dialect ($target)"
echo "-- apply, in manifest order"
apply_steps || { echo "FAILED: $failures check(s)"; exit 1; }

echo "-- post-deployment validation (runbook step 4)"
expect_call "GetConfigValue('Authentication.MaxFailedAttempts') = 5" '^5$' GetConfigValue ConfigKey=Authentication.MaxFailedAttempts
check "SELECT COUNT(*) FROM ${p}SystemConfiguration >= 7" 1 "SELECT CASE WHEN COUNT(*) >= 7 THEN 1 ELSE 0 END FROM ${p}SystemConfiguration"
for pair in Authentication.LockoutDurationMinutes=15 OTP.MaxAttempts=3 Database.CleanupBatchSize=1000 \
            Monitoring.EnableMetrics=1 Audit.RetentionDays=365 Audit.LogValidations=0; do
  expect_call "default ${pair%%=*} = ${pair#*=}" "^${pair#*=}$" GetConfigValue "ConfigKey=${pair%%=*}"
done
expect_call "GetConfigValue(unknown key) is empty" '^$' GetConfigValue ConfigKey=No.Such.Key

echo "-- configuration (SetConfigValue)"
expect_call "SetConfigValue OTP.MaxAttempts = 3 (the runbook's values)" '^OTP\.MaxAttempts\|3\|int$' SetConfigValue ConfigKey=OTP.MaxAttempts ConfigValue=3
expect_refused "SetConfigValue refuses an unknown key" "Unknown configuration key" SetConfigValue ConfigKey=No.Such.Key ConfigValue=1
expect_refused "SetConfigValue refuses a non-integer for an int key" "Invalid configuration value" SetConfigValue ConfigKey=Authentication.MaxFailedAttempts ConfigValue=five
expect_refused "SetConfigValue refuses 2 for a bool key" "Invalid configuration value" SetConfigValue ConfigKey=Monitoring.EnableMetrics ConfigValue=2
expect_call "SetConfigValue Authentication.LockoutDurationMinutes = 20" '\|20\|int$' SetConfigValue ConfigKey=Authentication.LockoutDurationMinutes ConfigValue=20
check "the configuration change is audited" 1 "SELECT COUNT(*) FROM ${p}AuditLog WHERE TableName = 'SystemConfiguration' AND OperationType = 'UPDATE' AND RecordId = 'Authentication.LockoutDurationMinutes'"
expect_call "SetConfigValue Authentication.LockoutDurationMinutes = 15" '\|15\|int$' SetConfigValue ConfigKey=Authentication.LockoutDurationMinutes ConfigValue=15

echo "-- validation helpers"
expect_call "ValidatePhoneNumber(+380501234567) = 1" '^1$' ValidatePhoneNumber PhoneNumber=+380501234567
expect_call "ValidatePhoneNumber(0501234567) = 0" '^0$' ValidatePhoneNumber PhoneNumber=0501234567
expect_call "ValidatePhoneNumber(+38050abc) = 0" '^0$' ValidatePhoneNumber PhoneNumber=+38050abc4567
expect_call "ValidateGuid(a GUID) = 1" '^1$' ValidateGuid Value=0f8fad5b-d9cb-469f-a165-70867728950e
expect_call "ValidateGuid(not a GUID) = 0" '^0$' ValidateGuid Value=0f8fad5b-d9cb-469f-a165-70867728950

echo "-- memberships and authentication contexts"
phone=+380501234567
expect_call "CreateMembership" '^[0-9a-f-]{36}\|active$' CreateMembership PhoneNumber=$phone SecureKey=hash-of-secret-1
membership="${last%%|*}"
expect_refused "CreateMembership refuses a duplicate phone number" "already exists" CreateMembership PhoneNumber=$phone SecureKey=hash-of-secret-1
expect_refused "CreateMembership refuses a bad phone number" "Invalid phone number" CreateMembership PhoneNumber=12345 SecureKey=hash-of-secret-1
expect_refused "CreateMembership refuses a short secure key" "Invalid secure key" CreateMembership PhoneNumber=+380501234568 SecureKey=short
expect_call "CreateAuthenticationContext" '^[0-9a-f-]{36}\|' CreateAuthenticationContext MembershipId="$membership" ValidForMinutes=60
context="${last%%|*}"
expect_refused "CreateAuthenticationContext refuses a bad GUID" "Invalid identifier" CreateAuthenticationContext MembershipId=not-a-guid ValidForMinutes=60
expect_refused "CreateAuthenticationContext refuses an unknown membership" "not found or not active" CreateAuthenticationContext MembershipId=0f8fad5b-d9cb-469f-a165-70867728950e ValidForMinutes=60
expect_refused "CreateAuthenticationContext refuses 0 minutes" "Invalid ValidForMinutes" CreateAuthenticationContext MembershipId="$membership" ValidForMinutes=0
expect_call "ValidateAuthenticationContext: valid" "^1\|$membership\|" ValidateAuthenticationContext ContextToken="$context"
check "SELECT COUNT(*) FROM ${p}AuthenticationContexts WHERE IsActive = 1 (runbook rollback check)" 1 "SELECT COUNT(*) FROM ${p}AuthenticationContexts WHERE IsActive = 1"
expect_call "DeactivateAuthenticationContext" '^1$' DeactivateAuthenticationContext ContextToken="$context"
expect_call "DeactivateAuthenticationContext again: nothing to do" '^0$' DeactivateAuthenticationContext ContextToken="$context"
expect_call "ValidateAuthenticationContext: deactivated" '^0\|' ValidateAuthenticationContext ContextToken="$context"
expect_call "CreateAuthenticationContext (second)" '^[0-9a-f-]{36}\|' CreateAuthenticationContext MembershipId="$membership" ValidForMinutes=5
context2="${last%%|*}"
expect_call "UpdateMembershipStatus blocked" "^$membership\|active\|blocked$" UpdateMembershipStatus MembershipId="$membership" Status=blocked
expect_call "a blocked membership's contexts are deactivated" '^0\|' ValidateAuthenticationContext ContextToken="$context2"
expect_refused "UpdateMembershipStatus refuses an unknown status" "Invalid status" UpdateMembershipStatus MembershipId="$membership" Status=deleted
expect_call "UpdateMembershipStatus active" "^$membership\|blocked\|active$" UpdateMembershipStatus MembershipId="$membership" Status=active
check "membership status changes audited with old and new values" 2 "SELECT COUNT(*) FROM ${p}AuditLog WHERE TableName = 'Memberships' AND OperationType = 'UPDATE' AND OldValues IS NOT NULL AND NewValues IS NOT NULL"

echo "-- login with lockout (MaxFailedAttempts = 5)"
expect_call "LoginMembership: success" "^1\|SUCCESS\|$membership\|5\|" LoginMembership PhoneNumber=$phone SecureKey=hash-of-secret-1
for n in 1 2 3 4 5; do
  expect_call "LoginMembership: wrong key $n" "^0\|INVALID_CREDENTIALS\|\|$((5 - n))\|" LoginMembership PhoneNumber=$phone SecureKey=wrong-key
done
expect_call "LoginMembership: locked out even with the right key" '^0\|LOCKED_OUT\|\|0\|' LoginMembership PhoneNumber=$phone SecureKey=hash-of-secret-1
expect_refused "LoginMembership refuses a bad phone number" "Invalid phone number" LoginMembership PhoneNumber=abc SecureKey=x
check "LOGIN_SUCCESS audited (TableName LoginAttempts, RecordId = phone)" 1 "SELECT COUNT(*) FROM ${p}AuditLog WHERE TableName = 'LoginAttempts' AND OperationType = 'LOGIN_SUCCESS' AND RecordId = '$phone'"
check "LOGIN_FAILED audited 5 times" 5 "SELECT COUNT(*) FROM ${p}AuditLog WHERE TableName = 'LoginAttempts' AND OperationType = 'LOGIN_FAILED' AND RecordId = '$phone'"
check "LOGIN_BLOCKED audited" 1 "SELECT COUNT(*) FROM ${p}AuditLog WHERE TableName = 'LoginAttempts' AND OperationType = 'LOGIN_BLOCKED' AND RecordId = '$phone'"
check "SUSPICIOUS_ACTIVITY when the lockout starts" 1 "SELECT COUNT(*) FROM ${p}AuditLog WHERE OperationType = 'SUSPICIOUS_ACTIVITY' AND RecordId = '$phone'"
check "LoginAttempts recorded (1 success, 5 failed, 1 blocked)" 7 "SELECT COUNT(*) FROM ${p}LoginAttempts WHERE PhoneNumber = '$phone'"
check "recent AuditLog rows (runbook: CreatedAt > 10 minutes ago)" 1 "SELECT CASE WHEN COUNT(*) > 0 THEN 1 ELSE 0 END FROM ${p}AuditLog WHERE CreatedAt > $(ago 10 minutes)"
check "PerformanceMetrics rows for LoginMembership" 1 "SELECT CASE WHEN COUNT(*) = 7 THEN 1 ELSE 0 END FROM ${p}PerformanceMetrics WHERE ProcedureName = 'LoginMembership'"
expect_call "SetConfigValue Monitoring.EnableMetrics = 0" '\|0\|bool$' SetConfigValue ConfigKey=Monitoring.EnableMetrics ConfigValue=0
expect_call "LoginMembership (metrics off)" '^0\|LOCKED_OUT' LoginMembership PhoneNumber=$phone SecureKey=wrong-key
check "no PerformanceMetrics row while Monitoring.EnableMetrics = 0" 7 "SELECT COUNT(*) FROM ${p}PerformanceMetrics WHERE ProcedureName = 'LoginMembership'"
expect_call "SetConfigValue Monitoring.EnableMetrics = 1" '\|1\|bool$' SetConfigValue ConfigKey=Monitoring.EnableMetrics ConfigValue=1
expect_call "another phone number is not locked" '^0\|INVALID_CREDENTIALS\|\|4\|' LoginMembership PhoneNumber=+14155550100 SecureKey=wrong-key

echo "-- verification flows (OTP.MaxAttempts = 3)"
expect_call "StartVerificationFlow" '^[0-9a-f-]{36}\|' StartVerificationFlow PhoneNumber=$phone Purpose=login OtpHash=otp-1 ValidForSeconds=300
flow="${last%%|*}"
expect_call "CompleteVerificationFlow: wrong OTP" '^0\|INVALID_OTP\|pending\|2$' CompleteVerificationFlow FlowId="$flow" OtpHash=otp-x
expect_call "CompleteVerificationFlow: right OTP" '^1\|VERIFIED\|verified\|1$' CompleteVerificationFlow FlowId="$flow" OtpHash=otp-1
expect_call "CompleteVerificationFlow: not pending any more" '^0\|NOT_PENDING\|verified\|' CompleteVerificationFlow FlowId="$flow" OtpHash=otp-1
expect_call "StartVerificationFlow (second)" '^[0-9a-f-]{36}\|' StartVerificationFlow PhoneNumber=$phone Purpose=recovery OtpHash=otp-2 ValidForSeconds=300
flow2="${last%%|*}"
expect_call "StartVerificationFlow (third) supersedes the second" '^[0-9a-f-]{36}\|' StartVerificationFlow PhoneNumber=$phone Purpose=recovery OtpHash=otp-3 ValidForSeconds=300
flow3="${last%%|*}"
expect_call "the superseded flow is expired" '^0\|NOT_PENDING\|expired\|' CompleteVerificationFlow FlowId="$flow2" OtpHash=otp-2
for n in 1 2; do expect_call "CompleteVerificationFlow: wrong OTP $n" '^0\|INVALID_OTP\|pending\|' CompleteVerificationFlow FlowId="$flow3" OtpHash=bad; done
expect_call "CompleteVerificationFlow: third wrong OTP fails the flow" '^0\|FAILED\|failed\|0$' CompleteVerificationFlow FlowId="$flow3" OtpHash=bad
check "SUSPICIOUS_ACTIVITY for the exhausted flow" 1 "SELECT COUNT(*) FROM ${p}AuditLog WHERE OperationType = 'SUSPICIOUS_ACTIVITY' AND TableName = 'VerificationFlows'"
expect_refused "StartVerificationFlow refuses an unknown purpose" "Invalid purpose" StartVerificationFlow PhoneNumber=$phone Purpose=fun OtpHash=otp ValidForSeconds=300
expect_refused "StartVerificationFlow refuses 5 seconds" "Invalid ValidForSeconds" StartVerificationFlow PhoneNumber=$phone Purpose=login OtpHash=otp ValidForSeconds=5
expect_refused "CompleteVerificationFlow refuses an unknown flow" "Verification flow not found" CompleteVerificationFlow FlowId=0f8fad5b-d9cb-469f-a165-70867728950e OtpHash=otp

echo "-- circuit breaker (FailureThreshold = 5)"
expect_call "GetCircuitBreakerState of an unknown circuit: closed" '^closed\|0\|1$' GetCircuitBreakerState Name=sms-gateway
for n in 1 2 3 4; do expect_call "RecordCircuitBreakerResult failure $n" "^closed\|$n$" RecordCircuitBreakerResult Name=sms-gateway Succeeded=false; done
expect_call "RecordCircuitBreakerResult failure 5 opens" '^open\|5$' RecordCircuitBreakerResult Name=sms-gateway Succeeded=false
expect_call "GetCircuitBreakerState: open, requests refused" '^open\|5\|0$' GetCircuitBreakerState Name=sms-gateway
expect_call "RecordCircuitBreakerResult success closes" '^closed\|0$' RecordCircuitBreakerResult Name=sms-gateway Succeeded=true
check "CIRCUIT_OPENED and CIRCUIT_CLOSED audited" 2 "SELECT COUNT(*) FROM ${p}AuditLog WHERE TableName = 'CircuitBreakerState' AND OperationType IN ('CIRCUIT_OPENED', 'CIRCUIT_CLOSED')"
expect_refused "RecordCircuitBreakerResult refuses an empty name" "Invalid circuit breaker name" RecordCircuitBreakerResult Name= Succeeded=true

echo "-- maintenance (runbook: automated maintenance)"
if [[ "$dialect" == sqlite ]]; then
  age_audit="UPDATE AuditLog SET CreatedAt = datetime('now', '-400 days') WHERE Id IN (SELECT Id FROM AuditLog ORDER BY Id LIMIT 3)"
  age_contexts="UPDATE AuthenticationContexts SET ExpiresAt = datetime('now', '-3 days')"
else
  age_audit="UPDATE dbo.AuditLog SET CreatedAt = now() - interval '400 days' WHERE Id IN (SELECT Id FROM dbo.AuditLog ORDER BY Id LIMIT 3)"
  age_contexts="UPDATE dbo.AuthenticationContexts SET ExpiresAt = now() - interval '3 days'"
fi
run_sql "$age_audit" >/dev/null && run_sql "$age_contexts" >/dev/null
expect_call "CleanupAuditLogs(365, 2): first batch" '^2\|1$' CleanupAuditLogs RetentionDays=365 BatchSize=2
expect_call "CleanupAuditLogs(365, 2): second batch" '^1\|0$' CleanupAuditLogs RetentionDays=365 BatchSize=2
expect_call "CleanupAuditLogs(365, 2): nothing left" '^0\|0$' CleanupAuditLogs RetentionDays=365 BatchSize=2
expect_refused "CleanupAuditLogs refuses RetentionDays 0" "Invalid RetentionDays" CleanupAuditLogs RetentionDays=0 BatchSize=10
expect_call "CleanupAuditLogs(30), BatchSize left out (runbook troubleshooting)" '^0\|0$' CleanupAuditLogs RetentionDays=30
expect_call "CleanupExpiredContexts(1000, 48)" '^2\|0$' CleanupExpiredContexts BatchSize=1000 OlderThanHours=48
expect_refused "CleanupExpiredContexts refuses BatchSize 0" "Invalid BatchSize" CleanupExpiredContexts BatchSize=0 OlderThanHours=48

echo "-- monitoring queries (runbook, this dialect's date functions)"
monitoring=(
"SELECT ProcedureName, AVG(ExecutionTimeMs) as AvgExecutionTime, COUNT(*) as CallCount, MAX(ExecutionTimeMs) as MaxExecutionTime
FROM ${p}PerformanceMetrics WHERE CreatedAt > $(ago 24 hours) GROUP BY ProcedureName ORDER BY AvgExecutionTime DESC LIMIT 10"
"SELECT ProcedureName, COUNT(*) as ErrorCount, MAX(CreatedAt) as LastError
FROM ${p}ErrorLog WHERE CreatedAt > $(ago 24 hours) GROUP BY ProcedureName ORDER BY ErrorCount DESC"
"SELECT RecordId as PhoneNumber, COUNT(*) as FailedAttempts, MAX(CreatedAt) as LastAttempt
FROM ${p}AuditLog WHERE TableName = 'LoginAttempts' AND OperationType = 'LOGIN_BLOCKED' AND CreatedAt > $(ago 24 hours)
GROUP BY RecordId ORDER BY FailedAttempts DESC"
"SELECT * FROM ${p}AuditLog WHERE OperationType = 'SUSPICIOUS_ACTIVITY' AND CreatedAt > $(ago 24 hours) ORDER BY CreatedAt DESC"
"SELECT * FROM ${p}PerformanceMetrics WHERE CreatedAt > $(ago 7 days) AND ExecutionTimeMs > 1000"
"SELECT * FROM ${p}SystemConfiguration WHERE ConfigKey = 'Authentication.MaxFailedAttempts'"
"SELECT TableName, COUNT(*) as RecordCount FROM ${p}AuditLog GROUP BY TableName ORDER BY RecordCount DESC"
"SELECT COUNT(*) FROM ${p}AuthenticationContexts WHERE IsActive = 1"
"SELECT * FROM ${p}DeploymentStatus WHERE IsPresent = 0"
)
for query in "${monitoring[@]}"; do
  if out="$(run_sql "$query" 2>&1)"; then pass "$(head -c 70 <<<"${query//$'\n'/ }")... ($(grep -c . <<<"$out" || true) rows)"
  else fail "monitoring query failed: $query: $out"; fi
done
check "monitoring: LOGIN_BLOCKED rows for the locked phone" 2 "SELECT FailedAttempts FROM (SELECT RecordId, COUNT(*) as FailedAttempts FROM ${p}AuditLog WHERE TableName = 'LoginAttempts' AND OperationType = 'LOGIN_BLOCKED' AND CreatedAt > $(ago 24 hours) GROUP BY RecordId) t WHERE RecordId = '$phone'"
check "monitoring: per-procedure performance has rows" 1 "SELECT CASE WHEN COUNT(*) > 5 THEN 1 ELSE 0 END FROM (SELECT ProcedureName FROM ${p}PerformanceMetrics WHERE CreatedAt > $(ago 24 hours) GROUP BY ProcedureName) t"

echo "-- re-apply the repeatable steps"
apply_steps REPEATABLE || true
expect_call "LoginMembership after re-applying" '^0\|LOCKED_OUT' LoginMembership PhoneNumber=$phone SecureKey=hash-of-secret-1

echo "-- partial rollback: revert memberships-procedures alone"
for line in "${steps[@]}"; do
  IFS=$'\t' read -r phase step kind file revert <<<"$line"
  if [[ "$step" == memberships-procedures ]]; then
    if run_file "$bundle/$revert" >"$work/out" 2>&1; then pass "revert $phase/$step"; else cat "$work/out"; fail "revert $phase/$step"; fi
    if [[ "$dialect" == sqlite ]]; then gone="not installed"; else gone="does not exist"; fi
    expect_refused "LoginMembership is gone after its step's revert" "$gone" LoginMembership PhoneNumber=$phone SecureKey=hash-of-secret-1
    expect_call "GetConfigValue still works (infrastructure kept)" '^5$' GetConfigValue ConfigKey=Authentication.MaxFailedAttempts
    if run_file "$bundle/$file" >"$work/out" 2>&1; then pass "re-apply $phase/$step"; else cat "$work/out"; fail "re-apply $phase/$step"; fi
    expect_call "LoginMembership is back" '^0\|LOCKED_OUT' LoginMembership PhoneNumber=$phone SecureKey=hash-of-secret-1
  fi
done

echo "-- revert every step, last first"
revert_steps || true
remaining="$(list_objects)"
if [[ -z "$remaining" ]]; then pass "no object of the bundle is left"; else fail "objects left after revert: ${remaining//$'\n'/, }"; fi

echo "-- apply again"
apply_steps || true
expect_call "GetConfigValue after re-applying" '^5$' GetConfigValue ConfigKey=Authentication.MaxFailedAttempts
if [[ "${KEEP:-}" != 1 ]]; then
  echo "-- revert again (KEEP=1 keeps the bundle applied)"
  revert_steps || true
fi

if ((failures > 0)); then echo "FAILED: $failures check(s)"; exit 1; fi
echo "PASSED"
