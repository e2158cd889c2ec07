# Throwaway PostgreSQL on loopback for tests and benchmarks. Source this file, then:
#   postgres_start DIR   -> sets POSTGRES_PORT, POSTGRES_URL and POSTGRES_ODBC_URL
#   postgres_stop        -> stops it (safe to call twice; call it from an EXIT trap)
# Needs tools/lib/common.sh. initdb refuses to run as root, so as root the cluster belongs to the `postgres` user.

postgres_bin_dir() {
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [[ -n $dir ]] || { echo "postgres: no PostgreSQL server installed (tools/setup installs it)" >&2; return 1; }
  echo "$dir"
}

_postgres_as_owner() {
  if ((EUID == 0)); then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

postgres_start() {
  local dir=$1 bin
  bin=$(postgres_bin_dir) || return 1
  POSTGRES_DIR=$dir/pgdata
  mkdir -p "$dir"
  # The postgres user must be able to reach the directory through its parents.
  ((EUID == 0)) && { chmod a+x "$(dirname "$dir")"; chown postgres "$dir"; }
  _postgres_as_owner "$bin/initdb" -D "$POSTGRES_DIR" -A trust -U postgres --no-sync \
    >"$dir/initdb.log" 2>&1 || { echo "postgres: initdb failed:" >&2; cat "$dir/initdb.log" >&2; return 1; }
  POSTGRES_PORT=$(free_port) || return 1
  _postgres_as_owner "$bin/pg_ctl" -D "$POSTGRES_DIR" -w -t 60 -l "$dir/postgres.log" \
    -o "-c listen_addresses=127.0.0.1 -p $POSTGRES_PORT -k $dir -c fsync=off -c max_connections=200" \
    start >/dev/null || { echo "postgres: start failed:" >&2; cat "$dir/postgres.log" >&2; return 1; }
  POSTGRES_BIN=$bin
  POSTGRES_URL="postgresql://postgres@127.0.0.1:$POSTGRES_PORT/postgres"
  POSTGRES_ODBC_URL="odbc://Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=$POSTGRES_PORT;Database=postgres;Uid=postgres;"
  export POSTGRES_PORT POSTGRES_URL POSTGRES_ODBC_URL
}

postgres_stop() {
  [[ -n ${POSTGRES_DIR:-} && -d ${POSTGRES_DIR:-} ]] || return 0
  _postgres_as_owner "$POSTGRES_BIN/pg_ctl" -D "$POSTGRES_DIR" -m immediate -w stop >/dev/null 2>&1 || true
  POSTGRES_DIR=
}
