#!/usr/bin/env bash
# `make demo`: one isolated run of the whole Rakor scenario against the local stack.
#
# Each run gets its own id, and with it its own topics (TOPIC_PREFIX=demo-<id>.), database
# schemas (demo_<id>_<service>), mail folder ($LOCAL_STACK_DIR/mail/<id>/) and log files
# ($LOCAL_STACK_DIR/logs/<service>-demo-<id>.log), so earlier runs never get in the way.
# Starts the SMTP sink and the three services with a compressed clock, runs demo.py, and
# always stops the services and the sink again; exits with demo.py's code.
#
# Ports (defaults in brackets): LOCAL_INVITATIONS_HTTP_PORT [8001], LOCAL_COMMITMENTS_HTTP_PORT
# [8002], LOCAL_NOTIFICATIONS_HTTP_PORT [8003], LOCAL_SMTP_PORT [2525].
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
STACK_DIR="${LOCAL_STACK_DIR:-$REPO/.local}"
PY="${PYTHON_BIN:-$REPO/.venv/bin/python}"

RUN_ID="${DEMO_RUN_ID:-$(date -u +%Y%m%d_%H%M%S)}"
[[ $RUN_ID =~ ^[a-z0-9_]{1,30}$ ]] || { echo "[demo] DEMO_RUN_ID must match [a-z0-9_]{1,30}" >&2; exit 2; }

export LOCAL_INVITATIONS_HTTP_PORT="${LOCAL_INVITATIONS_HTTP_PORT:-8001}"
export LOCAL_COMMITMENTS_HTTP_PORT="${LOCAL_COMMITMENTS_HTTP_PORT:-8002}"
export LOCAL_NOTIFICATIONS_HTTP_PORT="${LOCAL_NOTIFICATIONS_HTTP_PORT:-8003}"
export LOCAL_SMTP_PORT="${LOCAL_SMTP_PORT:-2525}"
# A local demo: the one mode that accepts the built-in development secrets (docs: README, Security).
export NTB_ENV="${NTB_ENV:-development}"
export LOCAL_LOG_SUFFIX="-demo-$RUN_ID"
export DEMO_RUN_ID="$RUN_ID"
export DEMO_MAIL_DIR="$STACK_DIR/mail/$RUN_ID"
export DEMO_LOG_DIR="$STACK_DIR/logs"

export KAFKA_BOOTSTRAP_SERVERS="${KAFKA_BOOTSTRAP_SERVERS:-$("$HERE/kafka.sh" env | sed 's/^export [A-Z_]*=//')}"
export DATABASE_URL="${DATABASE_URL:-$("$HERE/postgres.sh" env | sed 's/^export [A-Z_]*=//')}"

# Isolation of this run.
export TOPIC_PREFIX="demo-$RUN_ID."
export INVITATIONS_DB_SCHEMA="demo_${RUN_ID}_invitations"
export COMMITMENTS_DB_SCHEMA="demo_${RUN_ID}_commitments"
export NOTIFICATIONS_DB_SCHEMA="demo_${RUN_ID}_notifications"

# The compressed clock: the Rakor starts ~75 s after it is scheduled (demo.py), invitees are
# reminded 40 s and 20 s before; commitments are due 50 s after the meeting concludes, with
# a reminder 25 s before the deadline.
export INVITATIONS_REMINDER_LEADS='["PT40S","PT20S"]'
export INVITATIONS_PUBLIC_BASE_URL="http://127.0.0.1:$LOCAL_INVITATIONS_HTTP_PORT"
export COMMITMENTS_DEADLINE_AFTER="PT50S"
export COMMITMENTS_DEADLINE_REMINDER_LEADS='["PT25S"]'
export INVITATIONS_TIMER_POLL_SECONDS=0.5 COMMITMENTS_TIMER_POLL_SECONDS=0.5 NOTIFICATIONS_TIMER_POLL_SECONDS=0.5

# Mail goes to the local sink; webhooks are signed with a demo-only secret.
export NOTIFICATIONS_SMTP_HOST=127.0.0.1
export NOTIFICATIONS_SMTP_PORT="$LOCAL_SMTP_PORT"
# Staff pages: sign-in links go to the same sink; notices link to the commitments pages.
export COMMITMENTS_SMTP_PORT="$LOCAL_SMTP_PORT"
export COMMITMENTS_PUBLIC_BASE_URL="http://127.0.0.1:$LOCAL_COMMITMENTS_HTTP_PORT"
export NOTIFICATIONS_PAGES_BASE_URL="http://127.0.0.1:$LOCAL_COMMITMENTS_HTTP_PORT"
export NOTIFICATIONS_SMTP_STARTTLS=false
export NOTIFICATIONS_SMTP_TIMEOUT_SECONDS=10
export NOTIFICATIONS_WEBHOOK_SECRET="demo-only-webhook-secret-$RUN_ID"
export NOTIFICATIONS_DELIVERY_POLL_SECONDS=0.2
export NOTIFICATIONS_DELIVERY_BACKOFF_BASE_SECONDS=0.5
export NOTIFICATIONS_DELIVERY_BACKOFF_MAX_SECONDS=5
export NOTIFICATIONS_DELIVERY_LEASE_SECONDS=30

say() { echo "[demo] $*"; }

SINK_PID=""
cleanup() {
  "$HERE/services.sh" stop || true
  if [[ -n $SINK_PID ]] && kill -0 "$SINK_PID" 2>/dev/null; then
    kill -TERM "$SINK_PID" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$SINK_PID" 2>/dev/null || break; sleep 0.25; done
    say "SMTP sink stopped"
  fi
}
trap cleanup EXIT

say "run $RUN_ID: topics ${TOPIC_PREFIX}*, schemas demo_${RUN_ID}_*, mail $DEMO_MAIL_DIR"
"$HERE/services.sh" stop || true   # services of an earlier run would answer on our ports

mkdir -p "$DEMO_MAIL_DIR" "$DEMO_LOG_DIR"
if (exec 3<>"/dev/tcp/127.0.0.1/$LOCAL_SMTP_PORT") 2>/dev/null; then
  say "ERROR: port $LOCAL_SMTP_PORT for the SMTP sink is taken (set LOCAL_SMTP_PORT)" >&2; exit 1
fi
"$PY" "$HERE/smtp_sink.py" --port "$LOCAL_SMTP_PORT" --dir "$DEMO_MAIL_DIR" \
  >>"$DEMO_LOG_DIR/smtp-sink-demo-$RUN_ID.txt" 2>&1 &
SINK_PID=$!
for _ in $(seq 1 40); do
  (exec 3<>"/dev/tcp/127.0.0.1/$LOCAL_SMTP_PORT") 2>/dev/null && break
  kill -0 "$SINK_PID" 2>/dev/null || { cat "$DEMO_LOG_DIR/smtp-sink-demo-$RUN_ID.txt" >&2; say "ERROR: SMTP sink exited" >&2; exit 1; }
  sleep 0.25
done
say "SMTP sink on 127.0.0.1:$LOCAL_SMTP_PORT (pid $SINK_PID)"

"$HERE/services.sh" start || exit 1
"$PY" "$HERE/demo.py"
rc=$?
trap - EXIT
cleanup
exit $rc
