#!/usr/bin/env bash
# Print the path of Postfix's `smtp-sink` (a C SMTP server that accepts and discards mail,
# made for benchmarks), for bench B4 and the pipeline benchmarks.
# A smtp-sink on PATH (or $SMTP_SINK) wins; otherwise Debian's `postfix` package is fetched
# once with `apt-get download` and only smtp-sink and the two Postfix libraries it links are
# extracted into .local/tools: the package is never installed, so no postinst runs and no
# Postfix daemon is configured or started. The printed path is a wrapper that points the
# loader at the extracted libraries.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TOOLS="${LOCAL_STACK_DIR:-$ROOT/.local}/tools"
WRAPPER="$TOOLS/smtp-sink"

if [[ -n "${SMTP_SINK:-}" && -x "${SMTP_SINK}" ]]; then echo "$SMTP_SINK"; exit 0; fi
if command -v smtp-sink >/dev/null 2>&1; then command -v smtp-sink; exit 0; fi
if [[ -x "$WRAPPER" && -x "$TOOLS/postfix/smtp-sink" ]]; then echo "$WRAPPER"; exit 0; fi

command -v apt-get >/dev/null 2>&1 || { echo "smtp-sink not found and no apt-get to fetch it (install Postfix's smtp-sink or set SMTP_SINK)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # apt's download sandbox user must be able to write here
log="$work/apt.log"
( cd "$work" && apt-get download -q postfix ) >"$log" 2>&1 || {
  # A fresh machine may have no package lists yet.
  if [[ $(id -u) -eq 0 ]]; then
    { apt-get update -q && ( cd "$work" && apt-get download -q postfix ); } >"$log" 2>&1 \
      || { tail -n 20 "$log" >&2; echo "apt-get download postfix failed" >&2; exit 1; }
  else
    tail -n 20 "$log" >&2; echo "apt-get download postfix failed (run apt-get update as root first)" >&2; exit 1
  fi
}
dpkg-deb -x "$work"/postfix_*.deb "$work/x"
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
