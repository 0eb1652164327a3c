"""`ntbctl audit` and `ntbctl deliveries ...`: the services' HTTP APIs called with an operator's key."""

from __future__ import annotations

import sys
from typing import Any

import httpx

from shared.ntbctl import services
from shared.ntbctl.output import CONFIG, OUT, CommandError, progress


async def audit(commitment_id: str, client: httpx.AsyncClient | None = None) -> int:
    """Print the trail as at, actor, role, action, from -> to, reason (one line per transition)."""
    response = await api_call(services.COMMITMENT_AUDIT, client=client, commitment_id=commitment_id)
    for entry in response.json():
        OUT.row(entry, _transition_line)
    return 0


def _transition_line(entry: dict[str, Any]) -> str:
    return "\t".join([
        str(entry.get("at", "")), str(entry.get("actor", "")), str(entry.get("role", "")),
        str(entry.get("action", "")), f"{entry.get('from_status') or '-'} -> {entry.get('to_status')}",
        str(entry.get("reason") or ""),
    ])


async def api_call(route: services.Route, *, params: dict[str, Any] | None = None,
                   client: httpx.AsyncClient | None = None, **ids: str) -> httpx.Response:
    """One call with the operator's key. 2xx comes back; anything else is a one-line CommandError
    (404: not found, 409: refused, 401/403: the key) with the API's own reason."""
    headers = {"Authorization": f"Bearer {CONFIG.api_key()}"}
    own = client is None
    http = client or httpx.AsyncClient(base_url=CONFIG.get(f"{route.service}_url"), timeout=CONFIG_TIMEOUT)
    try:
        response = await http.request(route.method, route.to(**ids), params=params, headers=headers)
    finally:
        if own:
            await http.aclose()
    if response.is_success:
        return response
    try:
        detail = response.json().get("detail")
    except (ValueError, AttributeError):
        detail = None
    if not isinstance(detail, str):
        detail = response.reason_phrase
    hint = {401: " (check NTB_API_KEY)", 403: " (an operator key is needed)"}.get(response.status_code, "")
    raise CommandError(f"{response.status_code} {response.reason_phrase}: {' '.join(detail.split())[:300]}{hint}")


CONFIG_TIMEOUT = 15.0


DELIVERY_COLUMNS = ("delivery_id", "status", "channel", "recipient_id", "address", "attempts", "source_event_type",
                    "reason")


def _delivery_line(d: dict[str, Any]) -> str:
    return "\t".join(str(d.get(c) if d.get(c) is not None else "-") for c in DELIVERY_COLUMNS)


async def deliveries_list(*, event_id: str | None, recipient_id: str | None, status: str | None, limit: int) -> int:
    params = {k: v for k, v in {"event_id": event_id, "recipient_id": recipient_id, "status": status,
                                "limit": limit}.items() if v is not None}
    rows = (await api_call(services.DELIVERIES, params=params)).json()
    for d in rows:
        OUT.row(d, _delivery_line)
    print(f"{len(rows)} deliveries", file=sys.stderr)
    return 0


async def deliveries_show(delivery_id: str) -> int:
    d = (await api_call(services.DELIVERY, delivery_id=delivery_id)).json()
    trail = (await api_call(services.DELIVERY_AUDIT, delivery_id=delivery_id)).json()
    OUT.item({**d, "audit": trail}, _delivery_text)
    return 0


def _delivery_text(shown: dict[str, Any]) -> str:
    lines = [f"{k}:\t{v if v is not None else '-'}" for k, v in shown.items() if k != "audit"]
    lines += [f"audit:\t{a['at']}\t{a['actor']} ({a['actor_role']})\t{a['action']}\t"
              f"{a['from_status']} -> {a['to_status']}\tattempts before: {a['attempts_before']}" for a in shown["audit"]]
    return "\n".join(lines)


async def deliveries_resend(*, delivery_id: str | None, event_id: str | None, all_failed: bool, limit: int) -> int:
    """Resend one delivery, the failed ones of an event, or every failed delivery (one event at a time)."""
    if delivery_id is not None:
        d = (await api_call(services.RESEND_DELIVERY, delivery_id=delivery_id)).json()
        OUT.item(d, lambda d: f"resent {d['delivery_id']} ({d['channel']} to {d['address']}): {d['status']}")
        return 0
    if event_id is not None:
        events = [event_id]
    else:
        failed = (await api_call(services.DELIVERIES, params={"status": "failed", "limit": limit})).json()
        events = list(dict.fromkeys(d["source_event_id"] for d in failed))
        if not events:
            print("no failed deliveries", file=sys.stderr)
            return 0
    resent = refused = 0
    for done, event in enumerate(events, start=1):
        try:
            answer = (await api_call(services.RESEND_EVENT, params={"event_id": event})).json()
        except CommandError as exc:
            if not all_failed:
                raise
            refused += 1  # the rest still goes; the reason is shown
            OUT.row({"event_id": event, "resent": [], "error": str(exc)}, lambda r: f"{r['event_id']}\trefused\t{r['error']}")
        else:
            resent += len(answer["resent"])
            refused += len(answer["refused"])
            for delivery in answer["resent"]:
                OUT.row({"event_id": event, "delivery_id": delivery, "result": "resent"}, _resend_line)
            for r in answer["refused"]:
                OUT.row({"event_id": event, "delivery_id": r["delivery_id"], "result": "refused",
                         "reason": r["reason"]}, _resend_line)
        if all_failed:
            progress(done, len(events), "events")
    print(f"{resent} resent, {refused} refused", file=sys.stderr)
    return 0 if resent or not refused else 1


def _resend_line(r: dict[str, Any]) -> str:
    return "\t".join([r["event_id"], r["delivery_id"], r["result"], *([r["reason"]] if "reason" in r else [])])
