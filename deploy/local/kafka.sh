#!/usr/bin/env bash
# Single-node Apache Kafka (KRaft: broker and controller in one JVM) on
# 127.0.0.1, run straight from the official jars on Maven Central - no Docker.
#
#   kafka.sh start|stop|status|kill|env
#   kafka.sh topics ARGS...   runs the topic tool against this broker,
#                             e.g. `kafka.sh topics --list`
#
# Environment:
#   LOCAL_STACK_DIR              data/logs/pid folder   (default <repo>/.local)
#   LOCAL_KAFKA_PORT             client port            (default 19092)
#   LOCAL_KAFKA_CONTROLLER_PORT  controller port        (default 19093)
#   LOCAL_KAFKA_START_TIMEOUT    seconds to wait for readiness (default 180)
#   LOCAL_KAFKA_JVM_OPTS         replaces the default (small) JVM options
#   LOCAL_KAFKA_SECURITY         none (default) | sasl_ssl: a SASL_SSL listener (SCRAM-SHA-512) with a
#                                CA and broker certificate made here, one SCRAM user per principal of
#                                shared/contracts/kafka_acls.py, the StandardAuthorizer and those ACLs. Its
#                                data lives apart (.local/kafka-secured): switch by stop + start.
#                                `kafka.sh client-env [PRINCIPAL]` prints a principal's client
#                                settings (default admin; nothing when not secured).
set -euo pipefail

LOG_TAG=kafka
# shellcheck source=deploy/local/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"  # HERE REPO STACK_DIR HOST LIBS TOOL_OPTS say die port_open run_tool

PORT="${LOCAL_KAFKA_PORT:-19092}"
CPORT="${LOCAL_KAFKA_CONTROLLER_PORT:-19093}"
START_TIMEOUT="${LOCAL_KAFKA_START_TIMEOUT:-180}"
STOP_TIMEOUT=30

SECURITY="${LOCAL_KAFKA_SECURITY:-none}"
case "$SECURITY" in none) KDIR="$STACK_DIR/kafka" ;; sasl_ssl) KDIR="$STACK_DIR/kafka-secured" ;;
  *) echo "[kafka] ERROR: LOCAL_KAFKA_SECURITY must be none or sasl_ssl, not '$SECURITY'" >&2; exit 2 ;; esac
SECRETS="$KDIR/secrets"           # CA, broker key/certificate, one password file per principal
PY="${PYTHON_BIN:-$REPO/.venv/bin/python}"
DATA="$KDIR/data"                 # KRaft metadata + topic partitions
CONF="$KDIR/server.properties"    # regenerated on each start (ports may change)
ADMIN_CONF="$KDIR/admin.properties"
PIDFILE="$KDIR/kafka.pid"
OUT="$KDIR/kafka.out"             # the JVM's own stdout/stderr
LOGS="$KDIR/logs"                 # log4j2 server.log

# Small footprint: the machine has 2 cores shared with the services and tests.
JVM_OPTS="${LOCAL_KAFKA_JVM_OPTS:--Xms256m -Xmx512m -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true}"
# PID of this stack's broker, or nothing. The pid file is trusted only if that
# process is still a broker started with our config file (pids get reused);
# the pgrep fallback finds a broker whose pid file was lost.
broker_pid() {
  local pid=""
  [[ -f "$PIDFILE" ]] && pid="$(cat "$PIDFILE" 2>/dev/null || true)"
  if [[ -n "$pid" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $CONF"; then
    echo "$pid"; return 0
  fi
  pgrep -f -- "kafka.Kafka $CONF\$" | head -1 || true
}

need_java() {
  command -v java >/dev/null 2>&1 || die "java not found on PATH (Kafka 4 needs Java 17+; Debian: apt-get install -y openjdk-17-jre-headless)"
  local v
  v="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  if ! [[ "${v%%.*}" =~ ^[0-9]+$ ]] || (( ${v%%.*} < 17 )); then
    die "java $v found, Kafka 4 needs Java 17 or newer"
  fi
}

# Fetch the broker jars once. The marker holds the pom's checksum, so editing
# pom.xml (e.g. another Kafka version) triggers a fresh copy; otherwise mvn is
# not even started. Maven's own ~/.m2 cache makes a copy for a second stack
# folder quick and offline.
ensure_libs() {
  local want; want="$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)"
  if [[ -f "$LIBS/.complete" && "$(cat "$LIBS/.complete")" == "$want" ]]; then return 0; fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH; it is needed once to fetch the Kafka jars (Debian: apt-get install -y maven)"
  say "fetching Kafka jars from Maven Central into $LIBS (first run only) ..."
  mkdir -p "$KDIR"
  local tmp="$LIBS.tmp.$$"
  rm -rf "$tmp"
  if ! mvn -q -B -Dstyle.color=never -f "$HERE/pom.xml" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$tmp" >"$KDIR/mvn.log" 2>&1 \
     || ! ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1; then
    rm -rf "$tmp"
    tail -n 30 "$KDIR/mvn.log" >&2 || true
    die "downloading the Kafka jars failed - Maven Central unreachable or version not served? (full output: $KDIR/mvn.log)"
  fi
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  echo "$want" >"$LIBS/.complete"
  say "jars ready: $(basename "$LIBS"/kafka_2.13-*.jar)"
}

# Principals of shared/contracts/kafka_acls.py (the one definition), e.g. "admin invitations ... bpjs".
principals() {
  [[ -x $PY ]] || die "LOCAL_KAFKA_SECURITY=sasl_ssl needs the virtualenv ($PY); run 'make venv'"
  (cd "$REPO" && "$PY" -c 'from shared.contracts.kafka_acls import principals; print(*principals())')
}

# A CA and a broker certificate for 127.0.0.1, made once; passwords made once per principal.
make_secrets() {
  mkdir -p "$SECRETS"; chmod 700 "$SECRETS"
  if ! command -v openssl >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
    say "installing openssl from Debian's packages ..."
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssl; } >"$KDIR/apt.log" 2>&1 || true
  fi
  command -v openssl >/dev/null 2>&1 || die "openssl not found (Debian: apt-get install -y openssl)"
  if [[ ! -f "$SECRETS/broker.pem" ]]; then
    say "making a local CA and broker certificate in $SECRETS"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=ntb-local-ca" \
      -keyout "$SECRETS/ca.key" -out "$SECRETS/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=ntb-local-broker" \
      -keyout "$SECRETS/broker.key" -out "$SECRETS/broker.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >"$SECRETS/broker.ext"
    openssl x509 -req -in "$SECRETS/broker.csr" -CA "$SECRETS/ca.pem" -CAkey "$SECRETS/ca.key" -CAcreateserial \
      -days 3650 -extfile "$SECRETS/broker.ext" -out "$SECRETS/broker.crt" 2>/dev/null
    # Kafka's PEM key store: the PKCS#8 key, encrypted with a password of its own, then the chain.
    openssl rand -hex 16 >"$SECRETS/broker-key.password"
    openssl pkcs8 -topk8 -in "$SECRETS/broker.key" -passout "file:$SECRETS/broker-key.password" \
      -v1 PBE-SHA1-3DES -out "$SECRETS/broker.key.p8"
    cat "$SECRETS/broker.key.p8" "$SECRETS/broker.crt" "$SECRETS/ca.pem" >"$SECRETS/broker.pem"
  fi
  local p
  for p in $(principals); do
    [[ -f "$SECRETS/$p.password" ]] || openssl rand -hex 20 >"$SECRETS/$p.password"
  done
  chmod 600 "$SECRETS"/*
}

write_security_config() {
  cat <<EOF
# SASL_SSL for clients and between brokers; the controller listener takes mutual TLS with the
# broker certificate. ACLs decide everything else (shared/contracts/kafka_acls.py).
listeners=SASL_SSL://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
advertised.listeners=SASL_SSL://$HOST:$PORT
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:SSL,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat "$SECRETS/admin.password")";
ssl.keystore.type=PEM
ssl.keystore.location=$SECRETS/broker.pem
ssl.key.password=$(cat "$SECRETS/broker-key.password")
ssl.truststore.type=PEM
ssl.truststore.location=$SECRETS/ca.pem
listener.name.controller.ssl.client.auth=required
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:CN=ntb-local-broker
EOF
}

write_config() {
  mkdir -p "$DATA" "$LOGS"
  if [[ $SECURITY == sasl_ssl ]]; then
    make_secrets
    { echo "# Generated by deploy/local/kafka.sh on every start - edit the script, not this."
      echo "process.roles=broker,controller"; echo "node.id=1"
      echo "controller.quorum.voters=1@$HOST:$CPORT"; echo "controller.listener.names=CONTROLLER"
      write_security_config; } >"$CONF"
  else
  cat >"$CONF" <<EOF
# Generated by deploy/local/kafka.sh on every start - edit the script, not this.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$CPORT
listeners=PLAINTEXT://$HOST:$PORT,CONTROLLER://$HOST:$CPORT
advertised.listeners=PLAINTEXT://$HOST:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
EOF
  fi
  cat >>"$CONF" <<EOF
log.dirs=$DATA
# Test-friendly single-node settings.
num.partitions=3
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Internal topics default to 50 partitions; creating them would slow down the
# first consumer group / transaction of a test run for nothing.
offsets.topic.num.partitions=5
transaction.state.log.num.partitions=5
# After a kill -9 the restarted broker cannot register until the dead one's
# session expires (default 9 s); a shorter session makes crash tests faster.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=4000
num.network.threads=2
num.io.threads=4
EOF
  cat >"$ADMIN_CONF" <<EOF
request.timeout.ms=5000
default.api.timeout.ms=10000
EOF
  if [[ $SECURITY == sasl_ssl ]]; then
    chmod 600 "$CONF" "$ADMIN_CONF"
    cat >>"$ADMIN_CONF" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat "$SECRETS/admin.password")";
ssl.truststore.type=PEM
ssl.truststore.location=$SECRETS/ca.pem
EOF
  fi
}

# A principal's client settings (shared/platform/kafka_security.py reads them); default the administrator.
security_env() {
  [[ $SECURITY == sasl_ssl ]] || return 0
  local who="${1:-admin}"
  echo "export KAFKA_SECURITY_PROTOCOL=SASL_SSL KAFKA_SASL_MECHANISM=SCRAM-SHA-512 KAFKA_SASL_USERNAME=$who"
  echo "export KAFKA_SASL_PASSWORD_FILE=$SECRETS/$who.password KAFKA_SSL_CAFILE=$SECRETS/ca.pem"
}

apply_acls() {
  [[ $SECURITY == sasl_ssl ]] || return 0
  ( eval "$(security_env)"; export KAFKA_BOOTSTRAP_SERVERS="$HOST:$PORT"
    cd "$REPO" && "$PY" deploy/local/kafka_acls.py ) || die "applying the ACLs failed"
}

# KRaft storage must be formatted once with a cluster id; the data folder (and
# with it every topic) is then kept across stop/start.
format_storage() {
  [[ -f "$DATA/meta.properties" ]] && return 0
  local id
  id="$(run_tool kafka.tools.StorageTool random-uuid)" || die "could not generate a cluster id"
  say "formatting storage in $DATA (cluster id $id)"
  local scram=() p
  if [[ $SECURITY == sasl_ssl ]]; then
    for p in $(principals); do
      scram+=(--add-scram "SCRAM-SHA-512=[name=$p,password=$(cat "$SECRETS/$p.password")]")
    done
  fi
  run_tool kafka.tools.StorageTool format -t "$id" -c "$CONF" "${scram[@]}" >"$KDIR/format.log" 2>&1 \
    || { cat "$KDIR/format.log" >&2; die "formatting the storage failed"; }
}

LOG_OFFSET=0   # size of server.log before this start: show only this run's lines
show_logs() {
  echo "----- tail of $LOGS/server.log (this start) -----" >&2
  tail -c +$((LOG_OFFSET + 1)) "$LOGS/server.log" 2>/dev/null | tail -n 40 >&2 || true
  echo "----- tail of $OUT -----" >&2
  tail -n 20 "$OUT" >&2 2>/dev/null || true
}

# Ready = the client port accepts connections and a real metadata request
# (listing topics through the admin client) succeeds.
wait_ready() {
  local pid="$1" deadline=$((SECONDS + START_TIMEOUT))
  while (( SECONDS < deadline )); do
    if ! kill -0 "$pid" 2>/dev/null; then
      show_logs; rm -f "$PIDFILE"; die "broker exited during startup (logs above)"
    fi
    if port_open "$PORT" && run_tool org.apache.kafka.tools.TopicCommand \
         --bootstrap-server "$HOST:$PORT" --command-config "$ADMIN_CONF" --list >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  show_logs
  die "broker not ready after ${START_TIMEOUT}s (still running as pid $pid; '$0 stop' to end it)"
}

cmd_start() {
  local pid t0=$SECONDS
  pid="$(broker_pid)"
  if [[ -n "$pid" ]]; then
    port_open "$PORT" && { say "already running (pid $pid) on $HOST:$PORT"; return 0; }
    say "already starting (pid $pid), waiting until it answers ..."
    wait_ready "$pid"; say "ready on $HOST:$PORT"; return 0
  fi
  need_java
  for p in "$PORT" "$CPORT"; do
    port_open "$p" && die "port $HOST:$p is already in use$(port_owner "$p"); stop that process or set LOCAL_KAFKA_PORT / LOCAL_KAFKA_CONTROLLER_PORT"
  done
  ensure_libs
  write_config
  format_storage
  LOG_OFFSET="$(stat -c %s "$LOGS/server.log" 2>/dev/null || echo 0)"
  echo "=== start $(date '+%F %T') ===" >>"$OUT"
  # setsid + nohup: the broker survives the terminal/make that started it and
  # does not get its Ctrl-C. The pid of the background job is java's own pid.
  # 9>&-: the broker must not inherit (and so hold forever) the lock below.
  # shellcheck disable=SC2086
  setsid nohup java $JVM_OPTS -Dkafka.logs.dir="$LOGS" \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" \
    -cp "$LIBS/*" kafka.Kafka "$CONF" >>"$OUT" 2>&1 </dev/null 9>&- &
  pid=$!
  echo "$pid" >"$PIDFILE"
  say "starting (pid $pid), logs in $LOGS/server.log ..."
  wait_ready "$pid"
  apply_acls
  say "ready on $HOST:$PORT ($SECURITY) after $((SECONDS - t0))s"
}

# Wait up to $2 seconds for process $1 to go away.
wait_gone() {
  local i
  for ((i = 0; i < $2 * 5; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.2; done
  return 1
}

cmd_stop() {
  local pid; pid="$(broker_pid)"
  if [[ -z "$pid" ]]; then say "not running"; rm -f "$PIDFILE"; return 0; fi
  say "stopping (pid $pid) ..."
  kill -TERM "$pid" 2>/dev/null || true
  if ! wait_gone "$pid" "$STOP_TIMEOUT"; then
    say "no clean exit after ${STOP_TIMEOUT}s, sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 || die "pid $pid survived SIGKILL"
  fi
  rm -f "$PIDFILE"
  say "stopped"
}

# Crash simulation for fault tests: no controlled shutdown, data stays.
cmd_kill() {
  local pid; pid="$(broker_pid)"
  if [[ -z "$pid" ]]; then say "not running"; rm -f "$PIDFILE"; return 0; fi
  kill -KILL "$pid" 2>/dev/null || true
  wait_gone "$pid" 10 || die "pid $pid survived SIGKILL"
  rm -f "$PIDFILE"
  say "killed (pid $pid, SIGKILL)"
}

cmd_status() {
  local pid; pid="$(broker_pid)"
  if [[ -n "$pid" ]]; then
    say "running (pid $pid) on $HOST:$PORT, data in $DATA"
  else
    say "not running"; return 3
  fi
}

# One start/stop/kill at a time per stack folder (e.g. two test runs at once).
lock() { mkdir -p "$KDIR"; exec 9>"$KDIR/.lock"; flock 9; }

case "${1:-}" in
  start) lock; cmd_start ;;
  stop) lock; cmd_stop ;;
  kill) lock; cmd_kill ;;
  status) cmd_status ;;
  fetch) lock; need_java; ensure_libs ;;   # the jars only (deploy/local/cluster.sh uses them)
  env) echo "export KAFKA_BOOTSTRAP_SERVERS=$HOST:$PORT" ;;
  client-env) security_env "${2:-admin}" ;;   # secured mode: KAFKA_SECURITY_PROTOCOL ... of a principal
  topics) shift; [[ -f "$LIBS/.complete" ]] || die "jars not fetched yet, run '$0 start' first"
          run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$HOST:$PORT" --command-config "$ADMIN_CONF" "$@" ;;
  acls) shift; [[ -f "$LIBS/.complete" ]] || die "jars not fetched yet, run '$0 start' first"
        run_tool org.apache.kafka.tools.AclCommand --bootstrap-server "$HOST:$PORT" --command-config "$ADMIN_CONF" "$@" ;;
  *) echo "usage: $0 start|stop|status|kill|env|client-env|fetch|topics ARGS...|acls ARGS..." >&2; exit 2 ;;
esac
