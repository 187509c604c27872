#!/usr/bin/env bash
# Idempotent set-up of everything JenniferDIRAC's demo and tests need on Debian 12:
# the apt packages, uv, and the virtualenv .venv with the locked Python packages.
# A second run with nothing changed takes about a second.
set -euo pipefail
cd "$(dirname "$0")/.."

# swig + libssl-dev build M2Crypto, libmariadb-dev + pkg-config build mysqlclient (DIRAC[server]),
# mariadb-server runs DIRAC's databases in the tests, cloud-init validates rendered user data,
# bubblewrap confines the VMs LocalCloud boots, faketime runs the time-handling tests a year ahead.
# prometheus scrapes the metrics test, chromium + chromium-driver (Selenium) load the fleet page.
# nftables + iptables: the boot script blocks the metadata service in LocalCloud's VMs with them.
APT_PACKAGES=(swig libssl-dev libmariadb-dev pkg-config mariadb-server cloud-init bubblewrap faketime
              prometheus chromium chromium-driver nftables iptables)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    # cloud-init is installed only for its schema validator: it must never configure this host.
    $sudo mkdir -p /etc/cloud && $sudo touch /etc/cloud/cloud-init.disabled
    echo "setup: installing apt packages: ${missing[*]}"
    $sudo apt-get -q update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get -q -o DPkg::Lock::Timeout=600 \
        install -y --no-install-recommends "${missing[@]}"
fi

if ! python3 -m uv --version >/dev/null 2>&1; then
    echo "setup: installing uv"
    python3 -m pip install -q uv
fi

stamp_wanted=$(cat requirements/lock.txt setup.cfg pyproject.toml localcloud/setup.cfg localcloud/pyproject.toml | sha256sum | cut -d' ' -f1)
stamp_file=.venv/.jenniferdirac-stamp
if [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp_wanted" ]; then
    echo "setup: building .venv from requirements/lock.txt"
    [ -x .venv/bin/python ] || python3 -m uv venv -q --python 3.11 .venv
    python3 -m uv pip sync -q --python .venv/bin/python requirements/lock.txt
    python3 -m uv pip install -q --python .venv/bin/python --no-deps -e . -e ./localcloud
    echo "$stamp_wanted" > "$stamp_file"
fi
bash dev/openstack/setup.sh
