"""Fuzz every operation of every service from its own OpenAPI document (schemathesis + hypothesis).

Each service runs in process on the real PostgreSQL and Kafka, on an event loop in a helper thread
(hypothesis drives synchronous tests; the service's pool lives on that loop). Every operation is
fuzzed with valid data (positive) and schema-breaking data (negative), with the key of a role the
route allows, and again with real path parameters (an open commitment, a genuine RSVP token) so the
bodies reach the database. Requests go through schemathesis' own transport to the service
served by uvicorn on a socket, and every answer passes every schemathesis check (no 5xx, documented
status code, content type, headers and body schema, schema-valid data accepted unless a documented
business rule refuses it, schema-violating data rejected, required headers, auth not ignored) and:
  * no partial writes: a request that did not succeed (any non-2xx) and every GET leaves every table
    of the service's schema byte-identical (md5 of all rows, outbox included). Successful writes
    commit their state and events in one transaction by construction, so this is the sound check.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
import requests
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, reject, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config._checks import PositiveDataAcceptanceConfig

from services.commitments.bootstrap import build as build_commitments
from services.commitments.settings import CommitmentsSettings
from services.invitations.bootstrap import build as build_invitations
from services.invitations.settings import InvitationsSettings
from services.notifications.bootstrap import build as build_notifications
from shared.contracts.regions import normalize_region_code
from shared.contracts.roles import Role
from tests.integration.commitments.helpers import FakeClock
from tests.integration.conftest import DSN, http_client, issue_key, service_settings
from tests.integration.invitations.conftest import scheduled_and_invited, tokens_by_seat
from tests.integration.notifications.conftest import notif_settings

from .helpers import changed, fingerprint
from .test_authorization_matrix import COMMITMENTS_RULES, INVITATIONS_RULES, NOTIFICATIONS_RULES

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("cleanup_schemas"),
              # schemathesis' own strategies use `random`; nothing this test can change.
              pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")]

# per operation, per mode, per variant: 10 keeps the three services under a minute; FUZZ_EXAMPLES=200 is the long run
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "10"))
READER = {"invitations": Role.ORGANIZER, "commitments": Role.ORGANIZER, "notifications": Role.OPERATOR}
RULES = {"invitations": INVITATIONS_RULES, "commitments": COMMITMENTS_RULES, "notifications": NOTIFICATIONS_RULES}
FIGURES: dict[str, dict[str, Any]] = {}


class LoopThread:
    """An event loop in a thread: the service runs there, the synchronous fuzz submits to it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Served:
    """A Target served by uvicorn on an ephemeral port of 127.0.0.1."""

    def __init__(self, target: Target, loop: LoopThread) -> None:
        self.target, self.loop = target, loop
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(target.app, log_config=None, access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]

        async def serve() -> None:
            self.task = asyncio.get_running_loop().create_task(self.server.serve(sockets=[self.sock]))

        loop.run(serve())
        deadline = time.monotonic() + 20
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.http = httpx.Client(base_url=self.base_url, timeout=30)

    def close(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.loop.run(asyncio.wait_for(self.task, 20))


class Target:
    """A started service, its client, keys by role and region, and real path parameters."""

    def __init__(self, name: str, topic_prefix: str, schema: str) -> None:
        self.name, self.topic_prefix, self.schema = name, topic_prefix, schema
        self.keys: dict[tuple[Role, str | None], dict[str, str]] = {}
        self.real_params: dict[str, list[dict[str, str]]] = {}

    async def start(self) -> None:
        clock = FakeClock()
        if self.name == "invitations":
            self.runtime, self.app = build_invitations(
                service_settings(InvitationsSettings, self.topic_prefix, self.schema), clock=clock)
        elif self.name == "commitments":
            self.runtime, self.app = build_commitments(
                service_settings(CommitmentsSettings, self.topic_prefix, self.schema), clock=clock)
        else:
            self.runtime, self.app = build_notifications(notif_settings(self.topic_prefix, self.schema, 2525))
        await self.runtime.start()
        await http_client(self.app, self.runtime).aclose()  # wires the key store and /healthz, /readyz
        # Unhandled exceptions must come back as the 500 a real server sends, not raise in the client.
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, raise_app_exceptions=False), base_url="http://service")
        self.db = await asyncpg.connect(DSN)
        organizer = await self.auth(Role.ORGANIZER)
        if self.name == "invitations":
            meeting_id = await scheduled_and_invited(self.client, organizer, clock.now + timedelta(days=10))
            seats = await tokens_by_seat(self.db, self.schema, self.topic_prefix)
            self.real_params["/rsvp/{token}"] = [{"token": token} for _, token in list(seats.values())[:10]]
            self.real_params["/meetings/{meeting_id}"] = [{"meeting_id": meeting_id}]
            self.real_params["/directory/{region_code}/{role}"] = [{"region_code": "52.03", "role": "sekda"}]
        elif self.name == "commitments":
            r = await self.client.post("/commitments/requests", json={}, headers=organizer)
            assert r.status_code == 201, r.text
            opened = {o["region_code"]: o["commitment_id"] for o in r.json()["opened"]}
            self.real_params["/commitments/{region_code}"] = [{"region_code": c} for c in ("52.05", "52.06")]
            self.real_params["/commitments/{commitment_id}"] = [{"commitment_id": opened[c]} for c in ("52.07",)]
        else:
            self.real_params["/recipients/{recipient_id}"] = [{"recipient_id": "sekda-5201"}]

    async def stop(self) -> None:
        await self.client.aclose()
        await self.db.close()
        await self.runtime.stop()

    async def auth(self, role: Role, region: str | None = None) -> dict[str, str]:
        if (role, region) not in self.keys:
            self.keys[role, region] = {"Authorization": f"Bearer {await issue_key(self.runtime, role, region)}"}
        return self.keys[role, region]

    async def auth_for(self, method: str, path: str, path_parameters: dict[str, Any]) -> dict[str, str]:
        if method == "GET":
            return await self.auth(READER[self.name])
        roles = RULES[self.name][(method, path)]
        if not roles:
            return {}  # RSVP: the token in the path is the credential
        role = sorted(roles)[0]
        if role is Role.REGION_OPERATOR:
            try:
                region = normalize_region_code(str(path_parameters.get("region_code", "52.01")))
            except ValueError:
                region = "52.01"
            return await self.auth(role, region)
        return await self.auth(role)

    async def send(self, kwargs: dict[str, Any], auth: dict[str, str]) -> httpx.Response:
        return await self.client.request(
            kwargs["method"], kwargs["url"], headers={**kwargs.get("headers", {}), **auth},
            params=kwargs.get("params") or None, json=kwargs.get("json"), content=kwargs.get("data"),
            cookies=kwargs.get("cookies") or None)


def _real_params_for(target: Target, path: str) -> list[dict[str, str]]:
    for template, params in target.real_params.items():
        if path.startswith(template) and all("{" + k + "}" in path for k in params[0]):
            return params
    return []


@pytest.mark.parametrize("service", ["invitations", "commitments", "notifications"])
def test_fuzzed_requests_never_get_a_5xx_nor_write_partially(service, topic_prefix, schema_for):
    """Generated valid and invalid requests: every answer is < 500 and failures change no table."""
    loop = LoopThread()
    target = Target(service, topic_prefix, schema_for(service[:3]))
    loop.run(target.start())
    served = Served(target, loop)
    started = time.monotonic()
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    unsatisfiable: list[str] = []
    cases_per_op: Counter[str] = Counter()
    try:
        schema = schemathesis.openapi.from_dict(target.app.openapi())
        # Valid data may still break a business rule the schema cannot state (a start in the future, a
        # reason when declining, the meeting's state, a stale version): the documented 409/410/412/422.
        schema.config.checks.positive_data_acceptance = PositiveDataAcceptanceConfig(
            expected_statuses=["2xx", "401", "403", "404", "409", "410", "412", "422", "429"])
        operations = [result.ok() for result in schema.get_all_operations()]
        assert operations, "the OpenAPI document lists no operation"

        def fuzz_operation(method: str, path: str, mode: GenerationMode, strategy: Any) -> None:
            @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
                      phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def fuzz(case: Any) -> None:
                auth = loop.run(target.auth_for(method, path, case.path_parameters or {}))
                before = loop.run(fingerprint(target.db, target.schema))
                try:
                    # schemathesis' own transport (requests) over a real socket to uvicorn
                    response = case.call(base_url=served.base_url, headers=auth, timeout=30)
                except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL,
                        UnicodeEncodeError, ValueError):
                    reject()  # the client refuses to send it (e.g. a header it cannot encode)
                tables = changed(before, loop.run(fingerprint(target.db, target.schema)))
                cases_per_op[f"{method} {path}"] += 1
                statuses[response.status_code] += 1
                try:
                    # Every check: no 5xx, documented status, content type, headers and body schema,
                    # valid data accepted, invalid data rejected, required headers, auth not ignored...
                    case.validate_response(response, headers=auth,
                                           transport_kwargs={"base_url": served.base_url, "headers": auth})
                except Exception as exc:  # noqa: BLE001 - schemathesis raises its failure group
                    failures.append(f"{method} {path} [{mode.value}] -> {response.status_code}: "
                                    f"{' '.join(str(exc).split())[:700]}")
                if tables and (method == "GET" or not 200 <= response.status_code < 300):
                    failures.append(f"{method} {path} -> {response.status_code} changed {tables}")

            try:
                fuzz()
            except Unsatisfiable:
                # Nothing left to break (e.g. negative mode with every parameter fixed and no body).
                unsatisfiable.append(f"{mode.value} {method} {path}")

        for operation in operations:
            method, path = operation.method.upper(), operation.path
            variants: list[dict[str, str] | None] = [None, *_real_params_for(target, path)[:1]]
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                for fixed in variants:
                    strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)
                    fuzz_operation(method, path, mode, strategy)
        assert failures == [], "\n".join(failures[:20])
    finally:
        served.close()
        loop.run(target.stop())
        loop.close()
    total = sum(statuses.values())
    FIGURES[service] = {"operations": len(cases_per_op), "cases": total, "statuses": dict(sorted(statuses.items()))}
    print(f"\n[fuzz] {service}: {len(cases_per_op)} operations, {total} requests in "
          f"{time.monotonic() - started:.1f}s, statuses {dict(sorted(statuses.items()))}; "
          f"no case possible: {unsatisfiable}")
