"""Every test runs the services in development mode (NTB_ENV=development), the one mode that allows
the built-in development secrets; production (the default) refuses them. Set before any settings
are read, and inherited by the service processes the tests start."""

import os

os.environ.setdefault("NTB_ENV", "development")
