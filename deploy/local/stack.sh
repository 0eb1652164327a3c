#!/usr/bin/env bash
# The whole local stack: Kafka (kafka.sh) + PostgreSQL (postgres.sh).
#
#   stack.sh up|down|status|env
#
# A service whose address is already given in the environment is treated as
# external and left alone: KAFKA_BOOTSTRAP_SERVERS set -> no local Kafka,
# DATABASE_URL set -> no local PostgreSQL; `env` then echoes the given value.
# A value equal to the local stack's own address (e.g. after
# `eval "$(stack.sh env)"`) still counts as local.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KAFKA="$HERE/kafka.sh"
PG="$HERE/postgres.sh"

say() { echo "[stack] $*"; }

local_value() { "$1" env | sed 's/^export [A-Z_]*=//'; }

# true if VAR is set to something other than the local service's address
external() { # VAR SCRIPT
  local given="${!1:-}"
  [[ -n "$given" && "$given" != "$(local_value "$2")" ]]
}

cmd_up() {
  local rc=0 kpid=""
  # Kafka takes seconds, PostgreSQL about one: start them side by side.
  if external KAFKA_BOOTSTRAP_SERVERS "$KAFKA"; then
    say "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS is set: not starting local Kafka"
  else
    "$KAFKA" start & kpid=$!
  fi
  if external DATABASE_URL "$PG"; then
    say "DATABASE_URL is set: not starting local PostgreSQL"
  else
    "$PG" start || rc=1
  fi
  if [[ -n "$kpid" ]]; then wait "$kpid" || rc=1; fi
  if ((rc)); then say "FAILED (see messages above)"; return 1; fi
  say "up"
}

# Stops whatever local services run, external settings or not: nothing stays.
cmd_down() {
  local rc=0
  "$KAFKA" stop || rc=1
  "$PG" stop || rc=1
  return $rc
}

cmd_status() {
  local rc=0
  if external KAFKA_BOOTSTRAP_SERVERS "$KAFKA"; then say "kafka: external ($KAFKA_BOOTSTRAP_SERVERS)"
  else "$KAFKA" status || rc=3; fi
  if external DATABASE_URL "$PG"; then say "postgres: external (DATABASE_URL)"
  else "$PG" status || rc=3; fi
  return $rc
}

cmd_env() {
  if external KAFKA_BOOTSTRAP_SERVERS "$KAFKA"; then printf 'export KAFKA_BOOTSTRAP_SERVERS=%q\n' "$KAFKA_BOOTSTRAP_SERVERS"
  else "$KAFKA" env; "$KAFKA" client-env; fi
  if external DATABASE_URL "$PG"; then printf 'export DATABASE_URL=%q\n' "$DATABASE_URL"
  else "$PG" env; fi
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  *) echo "usage: $0 up|down|status|env" >&2; exit 2 ;;
esac
