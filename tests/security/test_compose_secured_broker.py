"""The secured option of docker-compose runs as written, without Docker: the same three scripts
(deploy/compose/kafka-certs.sh, kafka-secured.sh, kafka-acls.sh) are run here on loopback, with the
local stack's Kafka jars standing in for the Kafka image's /opt/kafka/bin. A private broker of
their making then takes the project's clients only as the principals and within the ACLs it
was given, over TLS that checks the CA the first script made.

What only Docker can show (service names as host names, volumes, the image's user) is checked
offline in tests/unit/test_compose_file.py. Part of the secured pass (`make test-secured`): the
ACL script starts one JVM per command."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, TopicAuthorizationFailedError

from shared.contracts.topics import COMMITMENTS_EVENTS, INVITATIONS_EVENTS, regional_inbound
from shared.platform import topic_plan
from shared.platform.kafka_security import KafkaSecurity
from tests.integration.conftest import ROOT

LIBS = Path(os.environ.get("LOCAL_STACK_DIR", ROOT / ".local")) / "kafka-libs"
COMPOSE = ROOT / "deploy" / "compose"
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.environ.get("LOCAL_KAFKA_SECURITY") != "sasl_ssl",
                       reason="the secured pass (make test-secured) runs it"),
    pytest.mark.skipif(not (LIBS / ".complete").exists() or not shutil.which("keytool"),
                       reason="needs the local stack's Kafka jars and keytool"),
]
PASSWORDS = {"admin": "Adm1nPassw0rdOfTheComposeBroker", "invitations": "Inv1tat1onsPassw0rdComposeXyz",
             "commitments": "C0mm1tmentsPassw0rdComposeXyz", "notifications": "N0t1f1cationsPassw0rdCompose"}
TOOLS = {"kafka-storage.sh": "kafka.tools.StorageTool", "kafka-acls.sh": "org.apache.kafka.tools.AclCommand",
         "kafka-server-start.sh": "kafka.Kafka"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kafka_home(root: Path) -> Path:
    """/opt/kafka/bin of the image, as shims over the jars deploy/local fetched."""
    bin_dir = root / "bin"
    bin_dir.mkdir(parents=True)
    log4j = ROOT / "deploy/local/log4j2-tools.properties"
    for name, main in TOOLS.items():
        (bin_dir / name).write_text(f'#!/bin/sh\nexec java -Xmx384m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 '
                                    f'-Dlog4j2.configurationFile={log4j} -cp "{LIBS}/*" {main} "$@"\n')
        (bin_dir / name).chmod(0o755)
    return root


def login(principal: str, password: str, ca: Path) -> KafkaSecurity:
    return KafkaSecurity(security_protocol="SASL_SSL", sasl_username=principal, sasl_password=password,
                         ssl_cafile=ca)


async def send(bootstrap: str, security: KafkaSecurity, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", request_timeout_ms=15000,
                                **security.aiokafka_options())
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{}", key=b"k")
    finally:
        await producer.stop()


@pytest.fixture
def compose_broker(tmp_path: Path):
    home = _kafka_home(tmp_path / "kafka")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    internal, host, controller = free_port(), free_port(), free_port()
    env = os.environ | {
        "SECRETS_DIR": str(secrets), "KAFKA_HOME": str(home), "KAFKA_INTERNAL_HOST": "localhost",
        "KAFKA_INTERNAL_PORT": str(internal), "KAFKA_HOST_PORT": str(host), "KAFKA_CONTROLLER_PORT": str(controller),
        "KAFKA_DATA_DIR": str(tmp_path / "data"), "KAFKA_WORK_DIR": str(tmp_path),
        "KAFKA_BROKER_UID": str(os.getuid()), "KAFKA": f"localhost:{internal}",
        "PATH": f"{home / 'bin'}:{os.environ['PATH']}",
        **{f"KAFKA_{p.upper()}_PASSWORD": pw for p, pw in PASSWORDS.items()},
    }
    made = subprocess.run(["sh", str(COMPOSE / "kafka-certs.sh")], env=env, capture_output=True, text=True,
                          timeout=180)
    assert made.returncode == 0, made.stderr
    again = subprocess.run(["sh", str(COMPOSE / "kafka-certs.sh")], env=env, capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 0 and "already" in again.stdout  # a restart keeps the CA
    assert not (secrets / "ca.p12").exists()  # the CA's key does not stay beside the broker
    log = (tmp_path / "broker.out").open("w")
    broker = subprocess.Popen(["sh", str(COMPOSE / "kafka-secured.sh")], env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield env, secrets / "ca.pem", f"127.0.0.1:{host}"
    finally:
        os.killpg(broker.pid, signal.SIGTERM)
        try:
            broker.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(broker.pid, signal.SIGKILL)
            broker.wait(10)
        log.close()


@pytest.mark.timeout(900)
async def test_the_compose_broker_admits_each_principal_only_where_its_acls_say(compose_broker, tmp_path):
    env, ca, bootstrap = compose_broker
    admin = login("admin", PASSWORDS["admin"], ca)

    async def up() -> None:
        for _ in range(120):
            try:
                admin_client = await topic_plan._admin(bootstrap, admin)  # noqa: SLF001 - the same admin client
                await admin_client.close()
                return
            except Exception:  # noqa: BLE001 - not up yet
                await asyncio.sleep(1)
        raise AssertionError("the compose broker did not come up:\n" + (tmp_path / "broker.out").read_text()[-3000:])

    await up()
    acls = await asyncio.to_thread(subprocess.run, ["sh", str(COMPOSE / "kafka-acls.sh")], env=env,
                                   capture_output=True, text=True, timeout=600)
    assert acls.returncode == 0, acls.stderr[-3000:]
    assert "ACLs in place" in acls.stdout
    report = await topic_plan.apply(bootstrap, topic_plan.plan(), security=admin)
    assert all(line.startswith("created") for line in report)

    invitations = login("invitations", PASSWORDS["invitations"], ca)
    await send(bootstrap, invitations, INVITATIONS_EVENTS)  # its own topic
    with pytest.raises(TopicAuthorizationFailedError):
        await send(bootstrap, invitations, COMMITMENTS_EVENTS)  # another service's
    commitments = login("commitments", PASSWORDS["commitments"], ca)
    await send(bootstrap, commitments, COMMITMENTS_EVENTS)
    with pytest.raises(TopicAuthorizationFailedError):
        await send(bootstrap, commitments, regional_inbound("52.01"))  # a regency's inbound topic
    # A wrong password or a CA other than the one the script made gets nowhere.
    with pytest.raises(KafkaError):
        await send(bootstrap, login("invitations", "Wr0ngPassw0rdOfTheComposeXyz", ca), INVITATIONS_EVENTS)
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_text(_unrelated_ca(tmp_path))
    with pytest.raises(Exception):  # noqa: B017, PT011 - the TLS handshake fails (ssl.SSLCertVerificationError or a Kafka error)
        await send(bootstrap, login("invitations", PASSWORDS["invitations"], other_ca), INVITATIONS_EVENTS)


def _unrelated_ca(tmp_path: Path) -> str:
    """A CA certificate nobody used to sign the broker's (keytool, like the compose script)."""
    store = tmp_path / "unrelated.p12"
    subprocess.run(["keytool", "-genkeypair", "-alias", "ca", "-dname", "CN=unrelated", "-keyalg", "RSA",
                    "-keysize", "2048", "-ext", "bc:c", "-keystore", str(store), "-storetype", "PKCS12",
                    "-storepass", "unrelated-pass", "-keypass", "unrelated-pass", "-noprompt"], check=True,
                   capture_output=True, timeout=60)
    return subprocess.run(["keytool", "-exportcert", "-rfc", "-alias", "ca", "-keystore", str(store),
                           "-storepass", "unrelated-pass"], check=True, capture_output=True, text=True,
                          timeout=60).stdout

