"""The review workflow state machine."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from services.commitments.workflow import FINAL, RULES, Action, ActionForbidden, IllegalTransition, allowed_actions, next_state
from shared.contracts.commitments import CommitmentStatus as S
from shared.contracts.roles import Role

R, D, B = Role.REGION_OPERATOR, Role.DISNAKERTRANS_REVIEWER, Role.BPJS_REVIEWER


def test_happy_path_request_to_acknowledged():
    """requested -> draft -> submitted -> verified -> acknowledged, each by its role."""
    state = S.REQUESTED
    for action, role in [(Action.SAVE_DRAFT, R), (Action.SUBMIT, R), (Action.VERIFY, D), (Action.ACKNOWLEDGE, B)]:
        state = next_state(state, action, role)
    assert state is S.ACKNOWLEDGED


def test_revision_loop():
    """Returned by either reviewer, the region can resubmit (directly or via a draft)."""
    assert next_state(S.SUBMITTED, Action.RETURN, D) is S.RETURNED
    assert next_state(S.VERIFIED, Action.RETURN, B) is S.RETURNED
    assert next_state(S.RETURNED, Action.SUBMIT, R) is S.SUBMITTED
    assert next_state(S.RETURNED, Action.SAVE_DRAFT, R) is S.DRAFT


def test_illegal_transitions_name_the_current_state():
    """Acknowledging a submitted commitment is refused, naming the state and where it is allowed from."""
    with pytest.raises(IllegalTransition, match="cannot acknowledge a commitment that is submitted") as exc:
        next_state(S.SUBMITTED, Action.ACKNOWLEDGE, B)
    assert exc.value.current is S.SUBMITTED and not isinstance(exc.value, ActionForbidden)


def test_wrong_role_is_forbidden_not_conflict():
    """A BPJS reviewer cannot verify, nor a region its own commitment: forbidden, whatever the state."""
    for state, action, role in [(S.SUBMITTED, Action.VERIFY, B), (S.SUBMITTED, Action.VERIFY, R)]:
        with pytest.raises(ActionForbidden):
            next_state(state, action, role)


def test_a_role_meeting_the_wrong_state_is_a_conflict():
    """Disnakertrans returning an already verified commitment (a lost race) is a state conflict, not forbidden."""
    with pytest.raises(IllegalTransition, match="needs bpjs_reviewer") as exc:
        next_state(S.VERIFIED, Action.RETURN, D)
    assert not isinstance(exc.value, ActionForbidden) and exc.value.current is S.VERIFIED


def test_final_states_allow_nothing():
    """Acknowledged and withdrawn commitments accept no action from anyone."""
    for state in FINAL:
        for role in Role:
            assert allowed_actions(state, role) == []


@given(state=st.sampled_from(list(S)), action=st.sampled_from(list(Action)), role=st.sampled_from(list(Role)))
def test_every_transition_follows_the_table(state, action, role):
    """next_state either returns a target listed for (state, action, role) or raises; never anything else."""
    expected = {r.target for r in RULES[action] if state in r.sources and role in r.roles}
    try:
        assert next_state(state, action, role) in expected
    except IllegalTransition as exc:
        assert not expected and exc.current is state


@given(st.lists(st.tuples(st.sampled_from(list(Action)), st.sampled_from(list(Role))), max_size=30))
def test_random_walks_never_leave_a_final_state(steps):
    """Whatever sequence of commands arrives, once final a commitment stays final."""
    state = S.REQUESTED
    for action, role in steps:
        was_final = state in FINAL
        try:
            state = next_state(state, action, role)
        except IllegalTransition:
            continue
        assert not was_final
