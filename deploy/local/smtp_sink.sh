#!/usr/bin/env bash
# Print the path of Postfix's `smtp-sink` (a C SMTP server that accepts and discards mail,
# made for benchmarks), for bench B4 and the pipeline benchmarks.
# A smtp-sink on PATH (or $SMTP_SINK) wins; otherwise Debian's `postfix` package is fetched
# once (common.sh, apt_extract) and only smtp-sink and the two Postfix libraries it links are
# extracted into .local/tools: the package is never installed, so no postinst runs and no
# Postfix daemon is configured or started. The printed path is a wrapper that points the
# loader at the extracted libraries.
set -euo pipefail
LOG_TAG=smtp-sink
# shellcheck source=deploy/local/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
WRAPPER="$TOOLS/smtp-sink"

if [[ -n "${SMTP_SINK:-}" && -x "${SMTP_SINK}" ]]; then echo "$SMTP_SINK"; exit 0; fi
if command -v smtp-sink >/dev/null 2>&1; then command -v smtp-sink; exit 0; fi
if [[ -x "$WRAPPER" && -x "$TOOLS/postfix/smtp-sink" ]]; then echo "$WRAPPER"; exit 0; fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
apt_extract postfix "$work"
log="$work/apt.log"
mkdir -p "$TOOLS/postfix"
install -m 755 "$work/x/usr/sbin/smtp-sink" "$TOOLS/postfix/smtp-sink"
install -m 644 "$work"/x/usr/lib/postfix/libpostfix-*.so "$TOOLS/postfix/"

# The Postfix libraries link a few ordinary shared libraries (Berkeley DB, ICU, libnsl, ...) that a
# minimal machine may lack: install those (libraries only, never postfix itself) when missing.
missing="$(LD_LIBRARY_PATH="$TOOLS/postfix" ldd "$TOOLS/postfix/smtp-sink" "$TOOLS"/postfix/libpostfix-*.so \
  | awk '/not found/ {print $1}' | sort -u)"
if [[ -n "$missing" ]]; then
  libs="$(dpkg-deb -f "$work"/postfix_*.deb Depends | tr ',' '\n' | sed 's/[(|].*//; s/ //g' | grep '^lib' || true)"
  if [[ $(id -u) -eq 0 && -n "$libs" ]]; then
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $libs >"$log" 2>&1 \
      || { tail -n 20 "$log" >&2; echo "installing smtp-sink's libraries failed" >&2; exit 1; }
  else
    echo "smtp-sink needs: $missing (install them as root: apt-get install $libs)" >&2; exit 1
  fi
fi

cat >"$WRAPPER" <<WRAP
#!/bin/sh
# Postfix's smtp-sink, extracted by deploy/local/smtp_sink.sh (no Postfix installed).
LD_LIBRARY_PATH="$TOOLS/postfix\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$TOOLS/postfix/smtp-sink" "\$@"
WRAP
chmod 755 "$WRAPPER"
{ "$WRAPPER" 2>&1 || true; } | grep -q usage || { echo "the extracted smtp-sink does not run" >&2; exit 1; }
echo "$WRAPPER"
