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
        """The path with its ids filled in, each one path segment whatever it holds."""
        return self.path.format(**{name: quote(value, safe="") for name, value in ids.items()})


COMMITMENT_AUDIT = Route("commitments", "GET", "/commitments/{commitment_id}/audit")
DELIVERIES = Route("notifications", "GET", "/deliveries")
DELIVERY = Route("notifications", "GET", "/deliveries/{delivery_id}")
DELIVERY_AUDIT = Route("notifications", "GET", "/deliveries/{delivery_id}/audit")
RESEND_DELIVERY = Route("notifications", "POST", "/deliveries/{delivery_id}/resend")
RESEND_EVENT = Route("notifications", "POST", "/deliveries/resend")
