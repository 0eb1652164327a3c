import sys

from shared.platform.cli import main

from .bootstrap import build, migration_sets
from .settings import CommitmentsSettings

sys.exit(main(sys.argv[1:], settings_factory=CommitmentsSettings, build=build, migration_sets=migration_sets))
