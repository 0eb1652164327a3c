"""shared/platform/smtp.py: how a send's failure is judged, and that its detail never quotes an address."""

import uuid

import aiosmtplib
import pytest

from services.commitments import sign_in_mail
from shared.platform import smtp


@pytest.mark.parametrize("exc, outcome", [
    (aiosmtplib.SMTPResponseException(550, "5.1.1 <sekda@dompukab.go.id> unknown"), "permanent"),
    (aiosmtplib.SMTPResponseException(451, "try later"), "transient"),
    (aiosmtplib.SMTPAuthenticationError(535, "bad credentials"), "transient"),
    (aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(550, "no", "sekda@dompukab.go.id")]),
     "permanent"),
    (aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(452, "full", "sekda@dompukab.go.id")]),
     "transient"),
    (aiosmtplib.SMTPConnectError("connection refused by sekda@dompukab.go.id"), "transient"),
    (ConnectionResetError("reset"), "transient"),
])
def test_failures_are_classified_without_quoting_the_server(exc, outcome):
    result = smtp.classify(exc)
    assert result.outcome == outcome
    assert "dompukab" not in result.detail and "sekda" not in result.detail


def test_envelope_sender_is_the_address_of_the_from_header():
    assert smtp.SmtpConfig("h", 25, "Sistem Rakor NTB <rakor@ntbprov.go.id>").envelope_from == "rakor@ntbprov.go.id"


def test_sign_in_tokens_are_rebuilt_from_the_row_id_under_the_secret():
    """The row keeps the id and the token's hash; only the secret turns the id into the token."""
    link = uuid.uuid4()
    token = sign_in_mail.token_for(b"k" * 32, link)
    assert token == sign_in_mail.token_for(b"k" * 32, link) != sign_in_mail.token_for(b"j" * 32, link)
    assert len(token) >= 43 and link.hex not in token
    assert sign_in_mail.token_hash(token) != token
