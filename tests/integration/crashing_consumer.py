"""A notifications process that dies by SIGKILL right after its first database commit.

Run by the crash test as a separate process: the handler's transaction has committed,
the Kafka offset has not, exactly the window a real crash can hit.
"""

import asyncio
import os
import signal
import sys

from services.notifications.bootstrap import build
from services.notifications.settings import NotificationsSettings
from shared.platform.logging import configure_logging


async def main() -> None:
    settings = NotificationsSettings()
    configure_logging("notifications-crash", json=True)
    runtime, _ = build(settings)

    def die(_event: object) -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    for consumer in runtime.consumers:  # fault injection for the test
        consumer.after_commit = die
    await runtime.start()
    await asyncio.sleep(120)
    sys.exit("the consumer never received the event")


if __name__ == "__main__":
    asyncio.run(main())
