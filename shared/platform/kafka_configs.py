"""Set single topic configs with IncrementalAlterConfigs (Kafka API 44, KIP-339).

aiokafka's admin client only has AlterConfigs (API 33), which REPLACES a resource's whole
dynamic config: raising `min.insync.replicas` with it silently drops every other override an
operator set on the topic (retention.ms, cleanup.policy, ...). IncrementalAlterConfigs changes
only the entries named, so `ntbctl topics apply` can raise one setting and leave the rest.

The request is built on aiokafka's own protocol classes and sent through its client, so it
uses the same connection, security (TLS, SASL) and version negotiation as every other call.
Version 0 is the non-flexible encoding those classes provide; brokers from 2.3 to 4.x take it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import for_code
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import Array, Boolean, Int8, Int16, Int32, Schema, String

TOPIC = 2  # ConfigResource type of a topic
SET = 0  # config_operation: SET (1 DELETE, 2 APPEND, 3 SUBTRACT)


class IncrementalAlterConfigsResponse_v0(Response):  # noqa: N801 - aiokafka's naming of versioned structs
    API_KEY = 44
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("responses", Array(
            ("error_code", Int16),
            ("error_message", String("utf-8")),
            ("resource_type", Int8),
            ("resource_name", String("utf-8")),
        )),
    )


class IncrementalAlterConfigsRequest_v0(RequestStruct):  # noqa: N801
    API_KEY = 44
    API_VERSION = 0
    RESPONSE_TYPE = IncrementalAlterConfigsResponse_v0
    SCHEMA = Schema(
        ("resources", Array(
            ("resource_type", Int8),
            ("resource_name", String("utf-8")),
            ("configs", Array(
                ("name", String("utf-8")),
                ("config_operation", Int8),
                ("value", String("utf-8")),
            )),
        )),
        ("validate_only", Boolean),
    )


class IncrementalAlterConfigsRequest(Request[IncrementalAlterConfigsRequest_v0]):
    API_KEY = 44

    def __init__(self, resources: list[Any], validate_only: bool = False) -> None:
        self._resources = resources
        self._validate_only = validate_only

    def build(self, request_struct_class: type[IncrementalAlterConfigsRequest_v0]) -> IncrementalAlterConfigsRequest_v0:
        return request_struct_class(self._resources, self._validate_only)


class ConfigChangeRefused(RuntimeError):
    def __init__(self, refused: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {reason}" for name, reason in sorted(refused.items())))
        self.refused = refused


async def set_topic_configs(admin: AIOKafkaAdminClient, changes: Mapping[str, Mapping[str, str]]) -> None:
    """Set the given configs of each topic, leaving its other configs as they are.

    Raises ConfigChangeRefused naming each topic the broker refused (ACL, unknown config,
    invalid value); topics it accepted are changed (the broker applies each resource alone)."""
    if not changes:
        return
    resources = [(TOPIC, topic, [(name, SET, value) for name, value in configs.items()])
                 for topic, configs in changes.items()]
    response = await admin._send_request(IncrementalAlterConfigsRequest(resources))  # noqa: SLF001 - aiokafka's one sender
    refused = {}
    for error_code, error_message, _, name in response.responses:
        if error_code:
            refused[name] = error_message or for_code(error_code).__name__
    if refused:
        raise ConfigChangeRefused(refused)
