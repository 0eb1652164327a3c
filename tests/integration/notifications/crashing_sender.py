"""A notifications process that dies by SIGKILL after the SMTP server accepted a message, before marking it.

Run by the restart test as a separate process: exactly the window where a real crash
leaves a sent message recorded as pending.
"""

import asyncio
import os
import signal
import sys

from services.notifications.bootstrap import build
from services.notifications.settings import NotificationsSettings
from shared.platform.logging import configure_logging


async def main() -> None:
    configure_logging("notifications-crash", json=True)

    def die(_row: object, attempt: object) -> None:
        if getattr(attempt, "sent", False):
            os.kill(os.getpid(), signal.SIGKILL)

    runtime, _ = build(NotificationsSettings(), after_send=die)
    await runtime.start()
    await asyncio.sleep(120)
    sys.exit("the sender never sent anything")


if __name__ == "__main__":
    asyncio.run(main())
