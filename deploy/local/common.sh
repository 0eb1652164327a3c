# Sourced (not run) by kafka.sh, postgres.sh and cluster.sh: the paths, the loopback host,
# messages and port probes they share, so the three agree on where the stack lives.
# The sourcing script sets LOG_TAG (kafka, postgres, cluster) first.
# shellcheck shell=bash

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
STACK_DIR="${LOCAL_STACK_DIR:-$REPO/.local}"
case "$STACK_DIR" in /*) ;; *) STACK_DIR="$PWD/$STACK_DIR" ;; esac
# Everything listens on loopback only: other checkouts' stacks run on the same machine.
HOST=127.0.0.1
# Jars of the Kafka scripts (kafka.sh fetches them; the cluster uses the same ones).
LIBS="$STACK_DIR/kafka-libs"
# Short-lived Kafka tools: the C1 compiler alone starts noticeably faster.
TOOL_OPTS="-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true"

say() { echo "[$LOG_TAG] $*"; }
die() { echo "[$LOG_TAG] ERROR: $*" >&2; exit 1; }

# Something accepts connections on 127.0.0.1:$1 (bash built-in, no nc needed).
port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

# " by users:(...)" for a port in use, when ss can tell.
port_owner() {
  command -v ss >/dev/null 2>&1 || return 0
  ss -ltnpH "sport = :$1" 2>/dev/null | grep -o 'users:(([^)]*' | head -1 | sed 's/users:((/ by /' || true
}

# A Kafka tool CLASS ARGS... with the broker's classpath and quiet logging.
run_tool() {
  # shellcheck disable=SC2086  # TOOL_OPTS is a list of options
  java $TOOL_OPTS -Dlog4j2.configurationFile="$HERE/log4j2-tools.properties" -cp "$LIBS/*" "$@"
}
