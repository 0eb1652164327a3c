"""Settings every test process (and the services it starts) shares.

Tests give themselves unique topic prefixes, so the services under test create their
throw-away topics at start instead of refusing to start until `ntbctl topics apply` ran.
Against the secured local stack (LOCAL_KAFKA_SECURITY=sasl_ssl), the tests' own clients and
the services they start log in as the stack's administrator, whose credentials and CA the
stack scripts wrote under .local/kafka-secured/secrets/ (deploy/local/kafka.sh client-env prints the same).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOPICS_PROVISION", "create")
# The services run in development mode (NTB_ENV=development), the one mode that allows the built-in
# development secrets; production (the default) refuses them. Set before any settings are read.
os.environ.setdefault("NTB_ENV", "development")

if os.environ.get("LOCAL_KAFKA_SECURITY", "none") != "none" and "KAFKA_SECURITY_PROTOCOL" not in os.environ:
    _secrets = Path(os.environ.get("LOCAL_STACK_DIR", Path(__file__).resolve().parents[1] / ".local")) / "kafka-secured/secrets"
    os.environ.update(
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        KAFKA_SASL_USERNAME="admin",
        KAFKA_SASL_PASSWORD_FILE=str(_secrets / "admin.password"),
        KAFKA_SSL_CAFILE=str(_secrets / "ca.pem"),
    )


# Set by the integration fixtures (tests/integration/conftest.py _topic_count): topics on the
# broker before and after the run, and the names the run left behind.
TOPIC_COUNT = pytest.StashKey[tuple[int, int, list[str]]]()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if (counts := config.stash.get(TOPIC_COUNT, None)) is not None:
        before, after, left = counts
        terminalreporter.write_line(f"topics on the broker: {before} before the run, {after} after"
                                    + (f"; left behind: {', '.join(left[:20])}" + (" ..." if len(left) > 20 else "")
                                       if left else ""))
