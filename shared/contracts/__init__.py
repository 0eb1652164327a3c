"""Event contracts: payload models, their versioned type names, and topics.

Importing this package registers every event type in `registry`.
"""

from shared.contracts import commitments, invitations, notifications, topics
from shared.contracts.registry import EventPayload, EventRegistry, EventSpec, UnknownEventType, registry

__all__ = [
    "EventPayload", "EventRegistry", "EventSpec", "UnknownEventType",
    "commitments", "invitations", "notifications", "registry", "topics",
]
