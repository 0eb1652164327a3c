#!/usr/bin/env bash
# Test tools from the OS packages: kcat (librdkafka's command-line client), used by the
# inbound-contract tests to publish records the way an outside integrator would.
# Installs with apt-get when it is missing and this runs as root; otherwise says what to do.
set -euo pipefail
if command -v kcat >/dev/null 2>&1 || command -v kafkacat >/dev/null 2>&1; then
  exit 0
fi
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "[tools] installing kcat (apt-get)"
  { apt-get install -y -qq kcat || { apt-get update -qq && apt-get install -y -qq kcat; }; } >/dev/null 2>&1 \
    || echo "[tools] could not install kcat; the kcat tests will be skipped" >&2
else
  echo "[tools] kcat is not installed (apt-get install kcat); the kcat tests will be skipped" >&2
fi
