#!/usr/bin/env bash
# Private PostgreSQL cluster on 127.0.0.1 from the machine's own PostgreSQL
# binaries (Debian's postgresql package) - no Docker, no system service.
#
#   postgres.sh start|stop|status|kill|env
#   postgres.sh psql [ARGS...]   psql connected to the ntb database as ntb
#
# Environment:
#   LOCAL_STACK_DIR   data/logs folder  (default <repo>/.local)
#   LOCAL_PG_PORT     TCP port          (default 15432)
#   LOCAL_PG_BIN      folder with pg_ctl/initdb/psql (default: newest
#                     /usr/lib/postgresql/*/bin)
set -euo pipefail

LOG_TAG=postgres
# shellcheck source=deploy/local/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"  # HERE REPO STACK_DIR HOST say die port_open port_owner

PORT="${LOCAL_PG_PORT:-15432}"
DB_USER=ntb DB_PASS=ntb DB_NAME=ntb
URL="postgresql://$DB_USER:$DB_PASS@$HOST:$PORT/$DB_NAME"

# PostgreSQL refuses to run as root: as root, every server-side command runs
# as the `postgres` system user (created by Debian's package); as any other
# user it simply runs as that user. (cd / because the postgres user may not be
# allowed into the caller's folder, e.g. /root, and would complain.)
IS_ROOT=0; [[ $EUID -eq 0 ]] && IS_ROOT=1
as_pg() { if ((IS_ROOT)); then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

# Where the cluster lives. Normally <stack>/postgres. When run as root and the
# postgres user cannot even reach the stack folder (e.g. it is under /root,
# mode 700), the cluster goes to a folder of its own in the postgres user's
# home instead, one per stack folder; `status` prints where.
pg_dir() {
  PGDIR="$STACK_DIR/postgres"
  ((IS_ROOT)) || return 0
  id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' system user (Debian: apt-get install -y postgresql)"
  local probe="$STACK_DIR"
  while [[ ! -d "$probe" ]]; do probe="$(dirname "$probe")"; done
  if ! as_pg test -x "$probe"; then
    local home; home="$(getent passwd postgres | cut -d: -f6)"
    PGDIR="$home/local-stack-$(printf %s "$STACK_DIR" | cksum | cut -d' ' -f1)"
  fi
}
pg_dir
DATA="$PGDIR/data"
SOCK="$PGDIR/run"          # unix socket dir: private, not /var/run/postgresql
LOG="$PGDIR/postgres.log"

find_bin() {
  if [[ -n "${LOCAL_PG_BIN:-}" ]]; then
    [[ -x "$LOCAL_PG_BIN/pg_ctl" ]] || die "LOCAL_PG_BIN=$LOCAL_PG_BIN has no pg_ctl"
    BIN="$LOCAL_PG_BIN"; return 0
  fi
  BIN="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  [[ -n "$BIN" && -x "$BIN/pg_ctl" ]] && return 0
  return 1
}

# Binaries are only installed by `start`, and only when we are root.
need_bin() {
  find_bin && return 0
  ((IS_ROOT)) || die "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (install Debian's postgresql package, or set LOCAL_PG_BIN)"
  say "PostgreSQL server binaries not found, installing Debian's postgresql package ..."
  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; } >/tmp/local-stack-apt.log 2>&1 \
    || { tail -n 20 /tmp/local-stack-apt.log >&2; die "apt-get install postgresql failed (full output: /tmp/local-stack-apt.log)"; }
  find_bin || die "postgresql installed but no pg_ctl under /usr/lib/postgresql/*/bin"
}

# pg_ctl status: 0 running, 3 not running, 4 no (valid) data folder.
is_running() {
  [[ -f "$DATA/PG_VERSION" ]] || return 1
  find_bin || return 1
  as_pg "$BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

init_cluster() {
  [[ -f "$DATA/PG_VERSION" ]] && return 0
  # umask 022 so every folder created on the way stays traversable.
  (umask 022 && mkdir -p "$PGDIR")
  ((IS_ROOT)) && chown postgres:postgres "$PGDIR"
  chmod 700 "$PGDIR"
  as_pg test -w "$PGDIR" || die "$PGDIR is not writable by the server user"
  say "initialising a new cluster in $DATA"
  # Local (unix socket) connections are trusted so this script can bootstrap
  # roles; TCP connections need the password, as a real deployment would.
  as_pg "$BIN/initdb" -D "$DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >"$PGDIR/initdb.log" 2>&1 \
    || { cat "$PGDIR/initdb.log" >&2; die "initdb failed"; }
  # Settings that can change between runs live in local_stack.conf, rewritten
  # by every start; the static ones are appended once here.
  as_pg tee -a "$DATA/postgresql.conf" >/dev/null <<'EOF'

# --- local dev stack (deploy/local/postgres.sh) ---
shared_buffers = 128MB
max_connections = 200
include_if_exists = 'local_stack.conf'
EOF
}

write_conf() {
  as_pg mkdir -p "$SOCK"
  as_pg tee "$DATA/local_stack.conf" >/dev/null <<EOF
# Rewritten by deploy/local/postgres.sh on every start.
listen_addresses = '$HOST'
port = $PORT
unix_socket_directories = '$SOCK'
EOF
  # Statement counts per role for the idle benchmark (bench/idle.py), where the server ships it.
  if [[ -f "$BIN/../lib/pg_stat_statements.so" ]]; then
    echo "shared_preload_libraries = 'pg_stat_statements'" | as_pg tee -a "$DATA/local_stack.conf" >/dev/null
  fi
}

# Superuser `ntb` (tests create databases) and its database, created once.
bootstrap() {
  local q=("$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK" -p "$PORT" -U postgres -d postgres -tA)
  if [[ "$(as_pg "${q[@]}" -c "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" != 1 ]]; then
    as_pg "${q[@]}" -c "CREATE ROLE $DB_USER LOGIN SUPERUSER PASSWORD '$DB_PASS'"
    say "created role $DB_USER"
  fi
  if [[ "$(as_pg "${q[@]}" -c "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]]; then
    as_pg "${q[@]}" -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
    say "created database $DB_NAME"
  fi
}

# Ready = the application's own connection (TCP, password) answers SELECT 1.
check_ready() {
  PGPASSWORD="$DB_PASS" PGCONNECT_TIMEOUT=5 "$BIN/psql" -X -q -tA "$URL" -c 'SELECT 1' 2>&1
}

cmd_start() {
  local t0=$SECONDS
  need_bin
  if is_running; then
    check_ready >/dev/null || die "a server is running on $DATA but '$URL' does not answer"
    say "already running on $HOST:$PORT"
    return 0
  fi
  port_open "$PORT" && die "port $HOST:$PORT is already in use$(port_owner "$PORT"); stop that process or set LOCAL_PG_PORT"
  init_cluster
  write_conf
  # -w waits until the server accepts connections (or failed); -l keeps its log.
  # 9>&-: the server must not inherit (and so hold forever) the lock below.
  if ! as_pg "$BIN/pg_ctl" start -D "$DATA" -l "$LOG" -w -t 60 >/dev/null 9>&-; then
    tail -n 30 "$LOG" >&2 || true
    die "server did not start (log: $LOG)"
  fi
  bootstrap
  local out
  out="$(check_ready)" || { tail -n 20 "$LOG" >&2; die "server started but '$URL' does not answer: $out"; }
  say "ready on $HOST:$PORT after $((SECONDS - t0))s (data in $DATA)"
}

cmd_stop() {
  if ! is_running; then say "not running"; return 0; fi
  say "stopping ..."
  # fast = roll back open transactions, disconnect clients, clean shutdown.
  if ! as_pg "$BIN/pg_ctl" stop -D "$DATA" -m fast -w -t 30 >/dev/null 2>&1; then
    say "no clean stop within 30s, stopping immediately"
    as_pg "$BIN/pg_ctl" stop -D "$DATA" -m immediate -w -t 10 >/dev/null 2>&1 || true
    local pid; pid="$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null || true)"
    if [[ -n "$pid" ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  is_running && die "server still running"
  say "stopped"
}

# Crash simulation: immediate shutdown, no checkpoint; the next start runs
# crash recovery from the WAL. Data of committed transactions is kept.
cmd_kill() {
  if ! is_running; then say "not running"; return 0; fi
  as_pg "$BIN/pg_ctl" stop -D "$DATA" -m immediate -w -t 10 >/dev/null
  say "killed (immediate shutdown)"
}

cmd_status() {
  if is_running; then
    say "running on $HOST:$PORT, data in $DATA"
  else
    say "not running"; return 3
  fi
}

# One start/stop/kill at a time per stack folder (e.g. two test runs at once).
lock() { mkdir -p "$STACK_DIR"; exec 9>"$STACK_DIR/.postgres.lock"; flock 9; }

case "${1:-}" in
  start) lock; cmd_start ;;
  stop) lock; cmd_stop ;;
  kill) lock; cmd_kill ;;
  status) cmd_status ;;
  env) echo "export DATABASE_URL=$URL" ;;
  psql) shift; find_bin || die "PostgreSQL binaries not found"
        PGPASSWORD="$DB_PASS" exec "$BIN/psql" "$URL" "$@" ;;
  *) echo "usage: $0 start|stop|status|kill|env|psql [ARGS...]" >&2; exit 2 ;;
esac
