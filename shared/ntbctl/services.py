"""What the operators' tool knows of the services, in this one place: their names (each is also
its database schema), where their APIs answer on the local stack, and the API routes it calls
(each service's OpenAPI document under deploy/openapi describes them)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

SCHEMAS = ("invitations", "commitments", "notifications")  # one schema per service, named after it

LOCAL_APIS = {  # NTB_ENV=development only (shared/ntbctl/output.py)
    "invitations": "http://127.0.0.1:8001",
    "commitments": "http://127.0.0.1:8002",
    "notifications": "http://127.0.0.1:8003",
}


@dataclass(frozen=True, slots=True)
class Route:
    service: str
    method: str
    path: str

    def to(self, **ids: str) -> str:
        """The path with its ids filled in, each one path segment whatever it holds.

        "." and ".." are written percent-encoded: as they are, the HTTP client would resolve them
        (`/deliveries/../audit` is `/audit`) and call another route. An id that is not text at all
        (bytes an operator's shell passed as lone surrogates) is refused with its name."""
        return self.path.format(**{name: _segment(name, value) for name, value in ids.items()})


def _segment(name: str, value: str) -> str:
    try:
        encoded = quote(value, safe="")
    except UnicodeEncodeError:
        from shared.ntbctl.output import UsageError  # output imports this module
        raise UsageError(f"{name.replace('_', ' ')} is not valid text (bytes that are not UTF-8)") from None
    return encoded.replace(".", "%2E") if encoded in (".", "..") else encoded


COMMITMENT_AUDIT = Route("commitments", "GET", "/commitments/{commitment_id}/audit")
DELIVERIES = Route("notifications", "GET", "/deliveries")
DELIVERY = Route("notifications", "GET", "/deliveries/{delivery_id}")
DELIVERY_AUDIT = Route("notifications", "GET", "/deliveries/{delivery_id}/audit")
RESEND_DELIVERY = Route("notifications", "POST", "/deliveries/{delivery_id}/resend")
RESEND_EVENT = Route("notifications", "POST", "/deliveries/resend")
