"""The raw baselines' e-mail half (B4's `raw` loops, PIPELINE's raw second hop): what a careful engineer
would write by hand around the notifications service's own routing, templates and MIME bytes.

Per Kafka record: the shipped routing (`routing.yaml`, `recipients.yaml`) picks the e-mail targets,
each is rendered with the service's templates (per recipient) and written as the same bytes as the
service sends (`channels.build_email`: Message-ID, X-Notification-Id = the delivery id, trace
headers); sending goes over `CONNECTIONS` reused connections, aiosmtplib `sendmail` (four round
trips per e-mail; aiosmtplib has no PIPELINING) or `shared.platform.smtp_session.Session`
(PIPELINING). No deliveries table, no outbox, no inbox: the framework's guarantees are what the
ratio to this loop prices.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any, NamedTuple

from shared.contracts import registry

CONNECTIONS = 4


class Email(NamedTuple):
    delivery_id: Any
    address: str
    message: bytes
    event_id: str
    recipient_id: str
    correlation_id: str | None


class RawMailer:
    def __init__(self, settings: Any, *, pipelined: bool) -> None:
        from services.notifications import mime
        from services.notifications.rendering import Renderer, make_environment

        self._settings = settings
        self._pipelined = pipelined
        self._rules = self.rules()
        self._people = self.people()
        self._renderer = Renderer(make_environment(None, pages_base_url=settings.pages_base_url))
        self._envelope_from = mime.sender_mailbox(settings.smtp_from)[1]
        self._clients: list[Any] = []

    @staticmethod
    def rules() -> list[Any]:
        """The shipped routing (routing.yaml)."""
        from services.notifications import domain
        from services.notifications.bootstrap import _data
        return domain.parse_rules(_data(None, "routing.yaml"))

    @staticmethod
    def people() -> list[Any]:
        """The shipped recipient directory (recipients.yaml), as the service's store reads it."""
        from services.notifications import store
        from services.notifications.bootstrap import _data
        return [store.to_recipient({
            **p, "recipient_id": p["id"], "title": p.get("title", ""), "region_code": p.get("region_code"),
            "email": p.get("email"), "webhook_url": p.get("webhook_url"),
            "channels": p.get("channels") or ["email"], "muted": p.get("muted") or []})
            for p in _data(None, "recipients.yaml")["recipients"]]

    def count(self, event_type: str, region_code: str) -> int:
        """How many e-mails the routing sends for one event of this type and region (nothing rendered)."""
        from services.notifications import domain
        return sum(1 for rule in domain.rules_for(self._rules, event_type) if not rule.digest
                   for t in domain.plan(rule, domain.audience(rule, self._people, region_code=region_code,
                                                              invitee=None))
                   if t.problem is None and t.channel.value == "email")

    async def open(self) -> None:
        import aiosmtplib

        from shared.platform.smtp_session import Session
        for _ in range(CONNECTIONS):
            client = aiosmtplib.SMTP(hostname=self._settings.smtp_host, port=self._settings.smtp_port,
                                     start_tls=False, timeout=self._settings.smtp_timeout_seconds)
            if self._pipelined:
                self._clients.append(await Session.open(client))
            else:
                await client.connect()
                self._clients.append(client)

    async def close(self) -> None:
        for client in self._clients:
            with contextlib.suppress(Exception):
                await client.quit()
        self._clients = []

    def emails(self, record: Any) -> list[Email]:
        """The e-mails one Kafka record (a binary-mode CloudEvent) asks for under the shipped routing."""
        from services.notifications import domain
        from services.notifications.channels import build_email
        from services.notifications.deliveries import Delivery
        from services.notifications.handlers import region_name

        headers = dict(record.headers)
        event_id, event_type = headers["ce_id"].decode(), headers["ce_type"].decode()
        correlation = headers["ce_correlationid"].decode() if "ce_correlationid" in headers else None
        event_time = datetime.fromisoformat(headers["ce_time"].decode())
        payload: Any = registry.spec(event_type).model.model_validate_json(record.value)
        out: list[Email] = []
        for rule in domain.rules_for(self._rules, event_type):
            if rule.digest:  # collected for the daily digest, not e-mailed now
                continue
            for target in domain.plan(rule, domain.audience(rule, self._people, region_code=payload.region_code,
                                                            invitee=None)):
                if target.problem is not None or target.channel.value != "email":
                    continue
                person = target.recipient
                rendered = self._renderer.render(rule.template, {
                    "event": payload, "recipient": person, "region": region_name(payload.region_code),
                    "event_type": event_type, "event_time": event_time})
                delivery = domain.delivery_id(event_id, person.recipient_id, target.channel)
                row = Delivery(delivery, event_id, event_type, correlation, person.recipient_id, person.name,
                               target.channel, person.email, rule.template, rendered.subject, rendered.text,
                               rendered.html, created_at=event_time)
                out.append(Email(delivery, person.email, build_email(
                    row, sender=self._settings.smtp_from, domain=self._settings.message_id_domain),
                    event_id, person.recipient_id, correlation))
        return out

    async def send(self, emails: list[Email]) -> None:
        """All of them, each connection taking the next while any is left."""
        queue = list(reversed(emails))

        async def work(client: Any) -> None:
            while queue:
                email = queue.pop()
                await client.sendmail(self._envelope_from, [email.address], email.message)

        await asyncio.gather(*(work(c) for c in self._clients))
