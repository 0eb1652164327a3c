"""Kafka client security: one builder, secrets only in the client's hands, never in a log line."""

from __future__ import annotations

import io
import json
import logging
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram512
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from pydantic import ValidationError

from services.commitments.settings import CommitmentsSettings
from shared.platform.kafka import SafeProducer, make_broker
from shared.platform.kafka_security import KafkaSecurity, client_options
from shared.platform.logging import configure_logging, get_logger

ENV_NAMES = ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD",
             "KAFKA_SASL_PASSWORD_FILE", "KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ca")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
                    "-keyout", str(folder / "ca.key"), "-out", str(folder / "ca.pem")], check=True, capture_output=True)
    return folder / "ca.pem"


def test_plaintext_is_the_default_and_adds_nothing_but_the_protocol() -> None:
    assert client_options(KafkaSecurity()) == {"security_protocol": "PLAINTEXT"}
    assert KafkaSecurity().faststream_security() is None


def test_sasl_ssl_scram_from_the_environment_with_a_password_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ca: Path
) -> None:
    (tmp_path / "pw").write_text("s3cret-from-a-file\n")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "commitments")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "pw"))
    monkeypatch.setenv("KAFKA_SSL_CAFILE", str(ca))
    options = client_options()
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "commitments"
    assert options["sasl_plain_password"] == "s3cret-from-a-file"  # the trailing newline is not part of it
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].check_hostname is True
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    # The services' settings pick up the same environment.
    assert CommitmentsSettings().kafka_security.sasl_username == "commitments"


def test_faststream_gets_the_same_security() -> None:
    scram = KafkaSecurity(security_protocol="SASL_PLAINTEXT", sasl_username="u", sasl_password="p")
    assert isinstance(scram.faststream_security(), SASLScram512)
    plain = KafkaSecurity(security_protocol="SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_username="u",
                          sasl_password="p")
    assert isinstance(plain.faststream_security(), SASLPlaintext)
    tls = KafkaSecurity(security_protocol="SSL").faststream_security()
    assert type(tls) is BaseSecurity and tls.use_ssl


def test_the_producer_and_the_broker_take_the_security(ca: Path) -> None:
    security = KafkaSecurity(security_protocol="SASL_SSL", sasl_username="u", sasl_password="p", ssl_cafile=ca)
    producer = SafeProducer("127.0.0.1:9", client_id="x", security=security)
    assert producer._security is security  # noqa: SLF001 - the options it will connect with
    make_broker("127.0.0.1:9", client_id="x", security=security)  # builds without connecting


@pytest.mark.parametrize("fields", [
    {"security_protocol": "SASL_SSL"},                                        # no credentials
    {"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u"},            # no password
    {"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u", "sasl_password": ""},
    {"security_protocol": "PLAINTEXT", "ssl_cafile": "/etc/hostname"},        # TLS file without TLS
    {"security_protocol": "SSL", "ssl_certfile": "/etc/hostname"},            # certificate without key
    {"security_protocol": "SSL", "ssl_cafile": "/nonexistent/ca.pem"},
    {"security_protocol": "TLS"},
    {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "GSSAPI", "sasl_username": "u", "sasl_password": "p"},
    {"security_protocol": "SASL_PLAINTEXT", "sasl_username": "u\nv", "sasl_password": "p"},
])
def test_incomplete_or_wrong_settings_are_refused_at_start(fields: dict) -> None:
    with pytest.raises(ValidationError):
        KafkaSecurity(**fields)


PASSWORDS = st.text(st.characters(blacklist_categories=("Cs",)), min_size=8, max_size=64).filter(
    lambda p: p.strip() == p and not set(p) & set("*\r\n") and len(set(p)) > 3
)


def _logged_with(password: str) -> tuple[str, KafkaSecurity, CommitmentsSettings]:
    stream = io.StringIO()
    configure_logging("test", level="DEBUG", json=True)
    root = logging.getLogger()
    root.handlers[0].setStream(stream)
    try:
        security = KafkaSecurity(security_protocol="SASL_PLAINTEXT", sasl_username="commitments",
                                 sasl_password=password)
        service = CommitmentsSettings(kafka_security=security)
        log = get_logger("test")
        log.info("kafka settings", security=security, described=security.describe(), dumped=security.model_dump())
        log.info("service settings", settings=service, dumped=service.model_dump())
        log.info("settings as text %s %r", security, service)
        logging.getLogger("aiokafka").warning("client settings %s", security)
    finally:
        root.handlers[0].setStream(sys.stderr)
    return stream.getvalue(), security, service


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(password=PASSWORDS)
def test_a_password_never_reaches_a_log_line(password: str) -> None:
    """Whatever the password, logging the settings (every way a developer might) shows no trace of it."""
    text, security, service = _logged_with(password)
    # A password that is a word of the log lines anyway (e.g. "Commitme") proves nothing either way.
    assume(password not in _logged_with("unrelated-Password-1")[0])
    assert "commitments" in text  # the lines were written
    assert password not in text
    assert json.dumps(password)[1:-1] not in text
    assert password not in repr(security) and password not in str(service.model_dump())


def test_describe_names_the_principal_but_no_secret() -> None:
    security = KafkaSecurity(security_protocol="SASL_PLAINTEXT", sasl_username="bpjs", sasl_password="hunter2hunter2")
    assert security.describe() == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
                                   "principal": "bpjs"}


@given(value=st.one_of(st.text(max_size=40), st.text(st.characters(blacklist_categories=()), max_size=8),
                       st.sampled_from(["plaintext", "SASL_SSL ", " SSL", "SASL_SSL\n", "SASL-SSL", "SSL\x00"])))
def test_hostile_protocol_values_are_refused_not_guessed(value: str) -> None:
    if value in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
        KafkaSecurity(security_protocol=value, sasl_username="u", sasl_password="p")
        return
    with pytest.raises(ValidationError):
        KafkaSecurity(security_protocol=value)


def test_a_multi_broker_bootstrap_string_becomes_a_list() -> None:
    """FastStream dials a "a:9092,b:9092" string as one host name: every client gets a list."""
    from shared.platform.kafka_security import bootstrap_list

    assert bootstrap_list("kafka-0:9093,kafka-1:9093, kafka-2:9093") == ["kafka-0:9093", "kafka-1:9093", "kafka-2:9093"]
    assert bootstrap_list("127.0.0.1:9092") == ["127.0.0.1:9092"]
    assert bootstrap_list(["a:1"]) == ["a:1"]
