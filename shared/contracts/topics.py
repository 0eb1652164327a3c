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
