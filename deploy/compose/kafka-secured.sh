#!/bin/sh
# The broker of docker-compose.secured.yml (entrypoint of the kafka service in the Kafka image):
# SASL_SSL with SCRAM-SHA-512 for clients and between brokers, mutual TLS on the controller
# listener, the StandardAuthorizer with no access unless an ACL grants it (kafka-acls.sh).
# SCRAM users are created when the storage is formatted (first start), from the passwords the
# operator put in the environment; the metadata log keeps them afterwards.
set -eu
: "${KAFKA_ADMIN_PASSWORD:?}" "${KAFKA_INVITATIONS_PASSWORD:?}" "${KAFKA_COMMITMENTS_PASSWORD:?}" \
  "${KAFKA_NOTIFICATIONS_PASSWORD:?}"
# The defaults are the container's; the variables let tests/integration/test_compose_secured.py
# run this same script on loopback with the local stack's Kafka jars.
S="${SECRETS_DIR:-/secrets}"
KAFKA_HOME="${KAFKA_HOME:-/opt/kafka}"
HOST="${KAFKA_INTERNAL_HOST:-kafka}"
DATA="${KAFKA_DATA_DIR:-/tmp/kafka-data}"
WORK="${KAFKA_WORK_DIR:-/tmp}"
CONF="$WORK/server.properties"
PW="$(cat "$S/keystore.password")"
umask 077
cat >"$CONF" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:${KAFKA_CONTROLLER_PORT:-9093}
controller.listener.names=CONTROLLER
# INTERNAL: the other containers (kafka:9094); HOST: tools on the Docker host (127.0.0.1:29094).
listeners=INTERNAL://:${KAFKA_INTERNAL_PORT:-9094},HOST://:${KAFKA_HOST_PORT:-29094},CONTROLLER://:${KAFKA_CONTROLLER_PORT:-9093}
advertised.listeners=INTERNAL://$HOST:${KAFKA_INTERNAL_PORT:-9094},HOST://127.0.0.1:${KAFKA_HOST_PORT:-29094}
inter.broker.listener.name=INTERNAL
listener.security.protocol.map=CONTROLLER:SSL,INTERNAL:SASL_SSL,HOST:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.internal.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$KAFKA_ADMIN_PASSWORD";
# Each SASL listener needs its own login module entry; HOST only verifies clients.
listener.name.host.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PKCS12
ssl.keystore.location=$S/broker.p12
ssl.keystore.password=$PW
ssl.key.password=$PW
ssl.truststore.type=PEM
ssl.truststore.location=$S/ca.pem
listener.name.controller.ssl.client.auth=required
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:CN=kafka
log.dirs=$DATA
auto.create.topics.enable=false
num.partitions=3
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
# The administrator's client settings, for the healthcheck and the kafka-acls one-shot.
cat >"$WORK/admin.properties" <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$KAFKA_ADMIN_PASSWORD";
ssl.truststore.type=PEM
ssl.truststore.location=$S/ca.pem
PROPS
if [ ! -f "$DATA/meta.properties" ]; then
  $KAFKA_HOME/bin/kafka-storage.sh format -t "$($KAFKA_HOME/bin/kafka-storage.sh random-uuid)" -c "$CONF" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=$KAFKA_ADMIN_PASSWORD]" \
    --add-scram "SCRAM-SHA-512=[name=invitations,password=$KAFKA_INVITATIONS_PASSWORD]" \
    --add-scram "SCRAM-SHA-512=[name=commitments,password=$KAFKA_COMMITMENTS_PASSWORD]" \
    --add-scram "SCRAM-SHA-512=[name=notifications,password=$KAFKA_NOTIFICATIONS_PASSWORD]"
fi
exec $KAFKA_HOME/bin/kafka-server-start.sh "$CONF"
