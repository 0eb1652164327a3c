"""shared/platform/smtp.py: how a send's failure is judged, and that its detail never quotes an address."""

import os
import uuid

import aiosmtplib
import pytest
from hypothesis import given, settings, strategies as st

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


# CI runs a bounded number of examples; NTB_HYPOTHESIS_PROFILE=long runs many more.
PROFILE = settings(max_examples={"ci": 300, "long": 5000}[os.environ.get("NTB_HYPOTHESIS_PROFILE", "ci")],
                   deadline=None)
LOCAL = st.from_regex(r"[A-Za-z0-9._%+-]{1,20}", fullmatch=True).map(lambda s: "zq" + s)
DOMAIN = st.from_regex(r"[a-z0-9-]{1,12}(\.[a-z0-9-]{1,8}){1,3}", fullmatch=True).map(lambda s: "xw" + s)
AROUND = st.text(st.characters(codec="utf-8", exclude_characters="@"), max_size=80)


@PROFILE
@given(code=st.integers(200, 599), before=AROUND, after=AROUND, local=LOCAL, domain=DOMAIN,
       bracket=st.booleans(), kind=st.sampled_from(["response", "refused", "connect"]))
def test_no_server_reply_quotes_an_address_back(code, before, after, local, domain, bracket, kind):
    """Whatever a server says around the address it echoes (line breaks, control characters, non-ASCII),
    the detail keeps neither its mailbox nor its domain, stays on one line, and the code decides the outcome."""
    address = f"<{local}@{domain}>" if bracket else f"{local}@{domain}"
    text = f"{before} {address} {after}"
    exc = {"response": lambda: aiosmtplib.SMTPResponseException(code, text),
           "refused": lambda: aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(code, text, address)]),
           "connect": lambda: aiosmtplib.SMTPConnectError(text)}[kind]()
    result = smtp.classify(exc)
    assert local not in result.detail and domain not in result.detail
    assert "\n" not in result.detail and "\r" not in result.detail
    if kind == "connect":
        assert result.outcome == "transient"
    else:
        assert result.outcome == ("permanent" if code >= 500 else "transient") and str(code) in result.detail
