"""Topic names. One topic of facts per bounded context, inbound topics for outside systems.

Every consumed topic has a dead-letter twin named `<topic>.dlq`.
"""

INVITATIONS_EVENTS = "ntb.invitations.events"
COMMITMENTS_EVENTS = "ntb.commitments.events"
NOTIFICATIONS_EVENTS = "ntb.notifications.events"
# Written by other government systems (regional finance systems, BPJS Ketenagakerjaan).
COMMITMENTS_INBOUND = "ntb.commitments.inbound"
REALIZATION_INBOUND = "ntb.bpjs.realization"

DLQ_SUFFIX = ".dlq"


def dlq(topic: str) -> str:
    return topic + DLQ_SUFFIX


ALL = (INVITATIONS_EVENTS, COMMITMENTS_EVENTS, NOTIFICATIONS_EVENTS, COMMITMENTS_INBOUND, REALIZATION_INBOUND)

# One inbound topic per regency/city, e.g. ntb.commitments.inbound.5201: on a secured cluster a
# regency's finance system may write only its own (ACL), and the commitments service refuses an
# event on it whose region_code is another regency's (shared/platform/sender_region.py).
REGIONAL_INBOUND_PREFIX = COMMITMENTS_INBOUND + "."


def regional_inbound(region_code: str) -> str:
    """`52.01` or `5201` -> ntb.commitments.inbound.5201"""
    return REGIONAL_INBOUND_PREFIX + region_code.replace(".", "")


def _regional() -> tuple[str, ...]:
    from shared.contracts.regions import regions  # reference data; imported late to keep this module a list of names

    return tuple(regional_inbound(code) for code in regions())


REGIONAL_INBOUND = _regional()
# Every topic `ntbctl topics apply` provisions (each with its dead-letter twin).
PROVISIONED = ALL + REGIONAL_INBOUND


def contract_of(topic: str) -> str:
    """The topic whose contract `topic` follows: a regional inbound topic takes what the inbound one takes."""
    return COMMITMENTS_INBOUND if topic in REGIONAL_INBOUND else topic
