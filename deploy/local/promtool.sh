#!/usr/bin/env bash
# Print the path of a promtool (Prometheus's rule checker), for the alert-rule tests.
# A promtool on PATH (or $PROMTOOL) wins; otherwise Debian's `prometheus` package is fetched
# once (common.sh, apt_extract) and only promtool is extracted into .local/tools: no
# Prometheus server is installed or started, and no root is needed.
set -euo pipefail
LOG_TAG=promtool
# shellcheck source=deploy/local/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if [[ -n "${PROMTOOL:-}" && -x "${PROMTOOL}" ]]; then echo "$PROMTOOL"; exit 0; fi
if command -v promtool >/dev/null 2>&1; then command -v promtool; exit 0; fi
if [[ -x "$TOOLS/promtool" ]]; then echo "$TOOLS/promtool"; exit 0; fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
apt_extract prometheus "$work"
mkdir -p "$TOOLS"
install -m 755 "$work/x/usr/bin/promtool" "$TOOLS/promtool"
echo "$TOOLS/promtool"
