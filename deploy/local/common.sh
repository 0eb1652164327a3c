# Sourced (not run) by kafka.sh, postgres.sh, cluster.sh, promtool.sh and smtp_sink.sh: the paths,
# the loopback host, messages, port probes and the tool fetcher they share, so they agree on where
# the stack lives. The sourcing script sets LOG_TAG (kafka, postgres, cluster, ...) first.
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

# Tools fetched from Debian packages (promtool.sh, smtp_sink.sh) live here.
TOOLS="$STACK_DIR/tools"

# apt_extract PACKAGE WORKDIR: `apt-get download` PACKAGE into WORKDIR and unpack it into
# WORKDIR/x. The package is never installed: no maintainer script runs, no daemon is configured
# or started, and without root nothing but the download is needed. A fresh machine may have no
# package lists yet: as root, `apt-get update` once and try again. The .deb stays in WORKDIR
# (its Depends field is there to read).
apt_extract() {
  local package="$1" work="$2" log="$2/apt.log"
  command -v apt-get >/dev/null 2>&1 || die "no apt-get to fetch $package from (install it, or point the tool's variable at one)"
  chmod 755 "$work"  # apt's download sandbox user must be able to write here
  if ! ( cd "$work" && apt-get download -q "$package" ) >"$log" 2>&1; then
    if [[ $(id -u) -eq 0 ]]; then
      { apt-get update -q && ( cd "$work" && apt-get download -q "$package" ); } >"$log" 2>&1 \
        || { tail -n 20 "$log" >&2; die "apt-get download $package failed"; }
    else
      tail -n 20 "$log" >&2; die "apt-get download $package failed (run apt-get update as root first)"
    fi
  fi
  dpkg-deb -x "$work/${package}"_*.deb "$work/x"
}
