import sys
from typing import Any

from shared.platform.cli import main
from shared.platform.settings import ServiceSettings

from .bootstrap import build, migration_sets
from .settings import InvitationsSettings


def _build(settings: ServiceSettings) -> tuple[Any, Any]:
    """`build` for `main`, which hands back what `settings_factory` made."""
    if not isinstance(settings, InvitationsSettings):
        raise TypeError(f"expected InvitationsSettings, got {type(settings).__name__}")
    return build(settings)


sys.exit(main(sys.argv[1:], settings_factory=InvitationsSettings, build=_build, migration_sets=migration_sets))
