"""The review workflow as an explicit state machine. Pure: no I/O.

    requested --save_draft--> draft --submit--> submitted --verify--> verified --acknowledge--> acknowledged
        |                       ^  |               |                    |
        +------submit-----------|--+            return               return
                                |                  v                    v
                                +--save_draft-- returned <--------------+
                                                   |
                                                   +--submit (resubmission)--> submitted
    any state but acknowledged/withdrawn --withdraw--> withdrawn

Disnakertrans verifies or returns a submission; BPJS Ketenagakerjaan acknowledges or
returns a verified one. Acknowledged and withdrawn are final.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from shared.contracts.commitments import CommitmentStatus as S
from shared.contracts.roles import Role
from shared.platform.errors import Conflict, DomainError, Forbidden


class Action(enum.StrEnum):
    SAVE_DRAFT = "save_draft"
    SUBMIT = "submit"
    VERIFY = "verify"
    RETURN = "return"
    ACKNOWLEDGE = "acknowledge"
    WITHDRAW = "withdraw"


class IllegalTransition(Conflict):
    """The action is not allowed from the current state (or not by this role): 409 naming the state."""

    def __init__(self, message: str, current: S) -> None:
        super().__init__(message, current_status=current.value)
        self.current = current


class ActionForbidden(IllegalTransition, Forbidden):
    """The action exists from this state, but this role may not take it: 403 with the reason alone.

    Still an IllegalTransition (next_state refuses with one family), answered as Forbidden."""

    http_status = Forbidden.http_status

    def __init__(self, message: str, current: S) -> None:
        DomainError.__init__(self, message)
        self.current = current


@dataclass(frozen=True, slots=True)
class Rule:
    sources: frozenset[S]
    target: S
    roles: frozenset[Role]


def _rule(sources: set[S], target: S, *roles: Role) -> Rule:
    return Rule(frozenset(sources), target, frozenset(roles))


# Who may take each action from where. A region operator acts only for its own region (the
# use cases check it, the edges first); a submission arriving as an event acts as the sending
# region's operator.
RULES: dict[Action, list[Rule]] = {
    Action.SAVE_DRAFT: [_rule({S.REQUESTED, S.DRAFT, S.RETURNED}, S.DRAFT, Role.REGION_OPERATOR)],
    Action.SUBMIT: [_rule({S.REQUESTED, S.DRAFT, S.RETURNED}, S.SUBMITTED, Role.REGION_OPERATOR)],
    Action.VERIFY: [_rule({S.SUBMITTED}, S.VERIFIED, Role.DISNAKERTRANS_REVIEWER)],
    Action.RETURN: [_rule({S.SUBMITTED}, S.RETURNED, Role.DISNAKERTRANS_REVIEWER),
                    _rule({S.VERIFIED}, S.RETURNED, Role.BPJS_REVIEWER)],
    Action.ACKNOWLEDGE: [_rule({S.VERIFIED}, S.ACKNOWLEDGED, Role.BPJS_REVIEWER)],
    Action.WITHDRAW: [_rule({S.REQUESTED, S.DRAFT, S.SUBMITTED, S.RETURNED, S.VERIFIED}, S.WITHDRAWN,
                            Role.REGION_OPERATOR, Role.ORGANIZER)],
}
FINAL = frozenset({S.ACKNOWLEDGED, S.WITHDRAWN})
# States in which the region still owes a submission: reminders and overdue apply.
AWAITING_SUBMISSION = frozenset({S.REQUESTED, S.DRAFT, S.RETURNED})
# States whose submitted figures count as committed in the summary.
COMMITTED = frozenset({S.SUBMITTED, S.VERIFIED, S.ACKNOWLEDGED})


def next_state(current: S, action: Action, role: Role) -> S:
    """The state after `action` by `role`, or IllegalTransition with a clear reason."""
    rules = RULES[action]
    from_here = [r for r in rules if current in r.sources]
    if not from_here:
        allowed = sorted({s.value for r in rules for s in r.sources})
        raise IllegalTransition(
            f"cannot {action.value} a commitment that is {current.value}; "
            f"allowed from: {', '.join(allowed)}", current)
    for rule in from_here:
        if role in rule.roles:
            return rule.target
    needed = sorted({r.value for rule in from_here for r in rule.roles})
    # A role that may take this action from another state has met a state conflict
    # (e.g. it lost a race), not a permission problem.
    error = IllegalTransition if any(role in r.roles for r in rules) else ActionForbidden
    raise error(
        f"role {role.value} may not {action.value} a commitment that is {current.value}; "
        f"needs {', '.join(needed)}", current)


def allowed_actions(current: S, role: Role) -> list[Action]:
    return [a for a, rules in RULES.items() if any(current in r.sources and role in r.roles for r in rules)]
