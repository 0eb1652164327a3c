#!/usr/bin/env bash
# The three services as separate background processes against the local stack.
#
#   services.sh start|stop|status
#
# Logs (JSON lines) go to $LOCAL_STACK_DIR/logs/<service>$LOCAL_LOG_SUFFIX.log; pids to
# $LOCAL_STACK_DIR/run/. `start` waits until each service's /readyz answers 200.
# The environment is passed through to the services (TOPIC_PREFIX, <SERVICE>_DB_SCHEMA, ...).
# HTTP ports: LOCAL_INVITATIONS_HTTP_PORT, LOCAL_COMMITMENTS_HTTP_PORT,
# LOCAL_NOTIFICATIONS_HTTP_PORT (default 8001, 8002, 8003).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
STACK_DIR="${LOCAL_STACK_DIR:-$REPO/.local}"
PY="${PYTHON_BIN:-$REPO/.venv/bin/python}"
LOGS="$STACK_DIR/logs"
RUN="$STACK_DIR/run"
LOG_SUFFIX="${LOCAL_LOG_SUFFIX:-}"
SERVICES=(
  "invitations:${LOCAL_INVITATIONS_HTTP_PORT:-8001}"
  "commitments:${LOCAL_COMMITMENTS_HTTP_PORT:-8002}"
  "notifications:${LOCAL_NOTIFICATIONS_HTTP_PORT:-8003}"
)

say() { echo "[services] $*"; }
die() { echo "[services] ERROR: $*" >&2; exit 1; }

pid_of() { local f="$RUN/$1.pid"; [[ -f $f ]] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"; }

stack_env() {
  # The local stack is a development run: the one mode that accepts the built-in development secrets.
  export NTB_ENV="${NTB_ENV:-development}"
  export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-$("$HERE/kafka.sh" env | sed 's/^export [A-Z_]*=//')}"
  export DATABASE_URL="${DATABASE_URL:-$("$HERE/postgres.sh" env | sed 's/^export [A-Z_]*=//')}"
}

cmd_start() {
  [[ -x $PY ]] || die "no virtualenv at $PY; run 'make venv'"
  mkdir -p "$LOGS" "$RUN"
  stack_env
  # Topics are provisioned before any service starts; the services only verify them.
  (cd "$REPO" && eval "$("$HERE/kafka.sh" client-env admin)" && "$PY" -m shared.ntbctl.commands topics apply >/dev/null) || die "provisioning the topics failed (ntbctl topics apply)"
  for entry in "${SERVICES[@]}"; do
    local name="${entry%%:*}" port="${entry##*:}" upper
    upper="$(tr a-z A-Z <<<"$name")"
    if pid_of "$name" >/dev/null; then say "$name already running"; continue; fi
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then die "port $port for $name is taken by another process"; fi
    # On the secured stack each service logs in as its own principal (shared/contracts/kafka_acls.py).
    (cd "$REPO" && eval "$("$HERE/kafka.sh" client-env "$name")" && \
      export "${upper}_HTTP_PORT=$port" "${upper}_LOG_JSON=true" && \
      exec "$PY" -m "services.$name" >>"$LOGS/$name$LOG_SUFFIX.log" 2>&1) &
    echo $! >"$RUN/$name.pid"
    say "$name starting (pid $!, http://127.0.0.1:$port, log $LOGS/$name$LOG_SUFFIX.log)"
  done
  for entry in "${SERVICES[@]}"; do
    local name="${entry%%:*}" port="${entry##*:}"
    for _ in $(seq 1 120); do
      if "$PY" - "$port" <<'PYEOF' 2>/dev/null; then break; fi
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=2)
PYEOF
      pid_of "$name" >/dev/null || { tail -n 30 "$LOGS/$name$LOG_SUFFIX.log" >&2; die "$name exited during start-up"; }
      sleep 0.5
    done
    "$PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/readyz', timeout=2)" 2>/dev/null \
      || { tail -n 30 "$LOGS/$name$LOG_SUFFIX.log" >&2; die "$name not ready after 60 s"; }
    say "$name ready"
  done
}

cmd_stop() {
  for entry in "${SERVICES[@]}"; do
    local name="${entry%%:*}" pid
    pid="$(pid_of "$name" || true)"
    [[ -n $pid ]] || { rm -f "$RUN/$name.pid"; continue; }
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then say "$name did not stop in 30 s; killing"; kill -KILL "$pid" || true; fi
    rm -f "$RUN/$name.pid"
    say "$name stopped"
  done
}

cmd_status() {
  local rc=0
  for entry in "${SERVICES[@]}"; do
    local name="${entry%%:*}"
    if pid="$(pid_of "$name")"; then say "$name running (pid $pid)"; else say "$name not running"; rc=3; fi
  done
  return $rc
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
