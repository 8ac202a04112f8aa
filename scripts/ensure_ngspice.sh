#!/usr/bin/env bash
# Make sure the ngspice CLI and the shared library (libngspice.so, for PySpice) are present.
# Installs them through apt when run as root; otherwise says what to run.
set -euo pipefail
have_lib() {
    for d in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib /usr/local/lib; do
        [ -e "$d/libngspice.so" ] && return 0
    done
    return 1
}
if command -v ngspice >/dev/null 2>&1 && have_lib; then
    exit 0
fi
PKGS="ngspice libngspice0 libngspice0-dev"
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "ngspice: installing $PKGS through apt ..."
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PKGS >/dev/null
    exit 0
fi
echo "error: ngspice is missing; install it with: sudo apt-get install $PKGS" >&2
exit 1
