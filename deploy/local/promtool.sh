#!/usr/bin/env bash
# Print the path of a promtool (Prometheus's rule checker), for the alert-rule tests.
# A promtool on PATH (or $PROMTOOL) wins; otherwise Debian's `prometheus` package is fetched
# once with `apt-get download` and only promtool is extracted into .local/tools: no
# Prometheus server is installed or started, and no root is needed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${LOCAL_STACK_DIR:-$ROOT/.local}/tools"

if [[ -n "${PROMTOOL:-}" && -x "${PROMTOOL}" ]]; then echo "$PROMTOOL"; exit 0; fi
if command -v promtool >/dev/null 2>&1; then command -v promtool; exit 0; fi
if [[ -x "$TOOLS/promtool" ]]; then echo "$TOOLS/promtool"; exit 0; fi

command -v apt-get >/dev/null 2>&1 || { echo "promtool not found and no apt-get to fetch it (install Prometheus's promtool or set PROMTOOL)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # apt's download sandbox user must be able to write here
log="$work/apt.log"
( cd "$work" && apt-get download -q prometheus ) >"$log" 2>&1 || {
  # A fresh machine may have no package lists yet.
  if [[ $(id -u) -eq 0 ]]; then
    { apt-get update -q && ( cd "$work" && apt-get download -q prometheus ); } >"$log" 2>&1 \
      || { tail -n 20 "$log" >&2; echo "apt-get download prometheus failed" >&2; exit 1; }
  else
    tail -n 20 "$log" >&2; echo "apt-get download prometheus failed (run apt-get update as root first)" >&2; exit 1
  fi
}
dpkg-deb -x "$work"/prometheus_*.deb "$work/x"
mkdir -p "$TOOLS"
install -m 755 "$work/x/usr/bin/promtool" "$TOOLS/promtool"
echo "$TOOLS/promtool"
