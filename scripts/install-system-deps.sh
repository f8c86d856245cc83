#!/usr/bin/env bash
# Installs the system packages the tests use: a mosquitto broker binary (tests start their
# own broker on a free port), systemd-analyze (to verify the unit file), libfaketime (the
# wall-clock step tests) and socat (a pty pair: the serial line of the Modbus RTU tests).
# Idempotent.
set -euo pipefail
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
compgen -G '/usr/lib/*/faketime/libfaketime.so.1' >/dev/null || need+=(libfaketime)
command -v socat >/dev/null 2>&1 || need+=(socat)
# Debian splits venv (ensurepip) out of python3; `make test` builds a virtualenv.
python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing system packages: ${need[*]}"
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
