"""Small shared helpers: backoff, WITA time, log redaction, API key format, settings."""

import logging
import random
from datetime import UTC, datetime, timedelta

import pytest
import structlog

from shared.contracts.roles import Role
from shared.platform.auth import Principal, parse_token
from shared.platform.kafka import make_broker, subscriber_options
from shared.platform.logging import configure_logging, mask_email
from shared.platform.retry import backoff_delays
from shared.platform.wita import WITA, as_wita


def test_backoff_grows_but_never_exceeds_the_cap():
    """Delays are positive, bounded by the cap, and their ceiling doubles."""
    delays = backoff_delays(base=0.1, cap=2.0, rng=random.Random(1))
    values = [next(delays) for _ in range(50)]
    assert all(0 < v <= 2.0 for v in values)
    assert max(values[:3]) <= 0.4


def test_naive_times_are_read_as_wita():
    """People in NTB write local times: a naive time is WITA (UTC+8)."""
    moment = as_wita(datetime(2026, 12, 1, 9, 0))
    assert moment.utcoffset() == timedelta(hours=8)
    assert as_wita(datetime(2026, 12, 1, 1, 0, tzinfo=UTC)).hour == 9
    assert moment.tzinfo == WITA


def test_email_addresses_are_masked():
    """Personal contact data is masked in logs, keeping the domain."""
    assert mask_email("sekda@lombokbaratkab.go.id") == "s***@lombokbaratkab.go.id"


def test_secret_fields_and_dsn_passwords_never_reach_a_log_line(capsys):
    """Token, password and DSN values are redacted by the logging pipeline."""
    configure_logging("test", json=True)
    log = structlog.stdlib.get_logger("t")
    log.info("connecting", token="ntbk_abc_secret", dsn_note="postgresql://u:hunter2@h/db")
    err = capsys.readouterr().err
    assert "ntbk_abc_secret" not in err and "hunter2" not in err
    assert '"service": "test"' in err
    logging.getLogger().handlers.clear()


def test_api_key_tokens_parse_into_id_and_secret():
    """ntbk_<id>_<secret> parses; anything else is rejected."""
    assert parse_token("ntbk_abc123_s3cret-x") == ("abc123", "s3cret-x")
    for bad in ("", "ntbk_abc", "Bearer x", "xx_abc_def", "ntbk__def", "ntbk_a_b_c"):
        assert parse_token(bad) is None


def test_region_operator_acts_only_for_its_region():
    """A region operator's principal is bound to its region; reviewers are not."""
    operator = Principal("k", "Disnaker Dompu", Role.REGION_OPERATOR, "52.05")
    assert operator.can_act_for("52.05") and not operator.can_act_for("52.06")
    assert Principal("k", "Disnakertrans", Role.DISNAKERTRANS_REVIEWER).can_act_for("52.06")


def test_safe_delivery_settings_cannot_be_overridden():
    """The broker factory refuses ack policy and producer durability overrides."""
    with pytest.raises(ValueError, match="safe delivery"):
        make_broker("127.0.0.1:1", "x", acks=1)
    with pytest.raises(ValueError, match="safe delivery"):
        subscriber_options("g", auto_commit=True)
    options = subscriber_options("g")
    assert options["ack_policy"].value == "nack_on_error"
    assert options["auto_offset_reset"] == "earliest"
