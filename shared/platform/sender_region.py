"""Inbound events are bound to their sender's region.

On a secured cluster each regency's finance system is a Kafka principal whose only Write
permission is its own topic, `ntb.commitments.inbound.<code>` (shared/contracts/kafka_acls.py). Kafka
authenticates the sender and the ACL fixes the topic, so the topic a record arrives on names
the one regency that can have written it. An event there whose `region_code` is another
regency's is refused (dead-lettered with the reason), exactly as the HTTP API answers 403 to a
regency key submitting for another region. The topic prefix of an environment is ignored.
"""

from __future__ import annotations

from shared.contracts.regions import normalize_region_code
from shared.contracts.topics import REGIONAL_INBOUND_PREFIX
from shared.platform.errors import Forbidden


def topic_region(topic: str) -> str | None:
    """The region a regional inbound topic belongs to, or None for any other topic."""
    at = topic.rfind(REGIONAL_INBOUND_PREFIX)
    if at < 0:
        return None
    suffix = topic[at + len(REGIONAL_INBOUND_PREFIX):]
    if not (len(suffix) == 4 and suffix.isascii() and suffix.isdigit()):  # e.g. its dead-letter twin
        return None
    try:
        return normalize_region_code(suffix)
    except ValueError:
        return None


def check(topic: str, region_code: str) -> None:
    """Raise Forbidden (the event is dead-lettered with the reason) when an event on a region's topic is for another region."""
    bound = topic_region(topic)
    if bound is not None and normalize_region_code(region_code) != bound:
        raise Forbidden(
            f"region_code {region_code} does not match the sender's region {bound} (topic {topic}); "
            "a regency may submit only for itself"
        )
