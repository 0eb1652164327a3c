"""`ntbctl`: the operators' command line (see commands.py). No service imports it."""
