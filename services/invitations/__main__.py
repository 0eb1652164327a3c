import sys

from shared.platform.cli import main

from .bootstrap import build, migration_sets
from .settings import InvitationsSettings

sys.exit(main(sys.argv[1:], settings_factory=InvitationsSettings, build=build, migration_sets=migration_sets))
