"""The security tests reuse the integration fixtures (real Kafka and PostgreSQL, isolated per test).

pytest only sees a conftest's fixtures inside its own folder, so they are re-exported here.
"""

from tests.integration.conftest import (  # noqa: F401 - fixtures re-exported for this folder
    _stack_is_up,
    _topic_count,
    cleanup_schemas,
    db,
    run_id,
    schema_for,
    topic_prefix,
)
from tests.integration.notifications.conftest import smtp_server, webhook_listener  # noqa: F401
