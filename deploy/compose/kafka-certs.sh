#!/bin/sh
# One-shot of docker-compose.secured.yml, in the Kafka image (it has keytool; no openssl needed):
# a CA of this installation and a broker certificate it signs, made once into the kafka-secrets
# volume and kept across restarts. Nothing here is shipped: every run on a new volume makes its own.
#   /secrets/ca.pem              the CA certificate the clients trust (KAFKA_SSL_CAFILE)
#   /secrets/broker.p12          the broker's key and certificate chain (PKCS#12)
#   /secrets/keystore.password   its random password (readable by the broker only)
set -eu
S="${SECRETS_DIR:-/secrets}"
# The broker runs as the image's own user (appuser): it alone may read the key.
BROKER_UID="${KAFKA_BROKER_UID:-$(id -u appuser 2>/dev/null || echo 1000)}"
if [ -s "$S/broker.p12" ] && [ -s "$S/ca.pem" ]; then
  echo "[kafka-certs] CA and broker certificate already in $S"; exit 0
fi
umask 077
rm -f "$S"/ca.p12 "$S"/broker.p12 "$S"/broker.csr "$S"/broker.crt "$S"/ca.pem
# 32 random bytes as hex: keytool passwords must be text.
od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$S/keystore.password"
PW="$(cat "$S/keystore.password")"
keytool -genkeypair -alias ca -dname "CN=ntb-rakor-compose-ca" -keyalg RSA -keysize 3072 -validity 3650 \
  -ext bc:c -keystore "$S/ca.p12" -storetype PKCS12 -storepass "$PW" -keypass "$PW" -noprompt
keytool -exportcert -rfc -alias ca -keystore "$S/ca.p12" -storepass "$PW" -file "$S/ca.pem"
# The broker is dialled as kafka (other containers) and 127.0.0.1 / localhost (tools on the host).
keytool -genkeypair -alias broker -dname "CN=kafka" -keyalg RSA -keysize 2048 -validity 3650 \
  -keystore "$S/broker.p12" -storetype PKCS12 -storepass "$PW" -keypass "$PW" -noprompt
keytool -certreq -alias broker -keystore "$S/broker.p12" -storepass "$PW" -file "$S/broker.csr"
keytool -gencert -alias ca -keystore "$S/ca.p12" -storepass "$PW" -infile "$S/broker.csr" -outfile "$S/broker.crt" \
  -rfc -validity 3650 -ext "SAN=dns:kafka,dns:localhost,ip:127.0.0.1" -ext "EKU=serverAuth,clientAuth"
keytool -importcert -alias ca -keystore "$S/broker.p12" -storepass "$PW" -file "$S/ca.pem" -noprompt
keytool -importcert -alias broker -keystore "$S/broker.p12" -storepass "$PW" -file "$S/broker.crt" -noprompt
# The CA's key is needed only to sign: it does not stay beside the broker.
rm -f "$S/ca.p12" "$S/broker.csr" "$S/broker.crt"
chown "$BROKER_UID" "$S/broker.p12" "$S/keystore.password"
chmod 0600 "$S/broker.p12" "$S/keystore.password"
chmod 0644 "$S/ca.pem"
chmod 0755 "$S"
echo "[kafka-certs] made a CA and a broker certificate for kafka, localhost and 127.0.0.1 in $S"
