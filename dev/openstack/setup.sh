#!/usr/bin/env bash
# Idempotent set-up of .venv-openstack: real Keystone 30, Nova 34 and Placement 16 from PyPI,
# pinned by requirements/openstack-lock.txt, for the tests under tests/realcloud.
# A virtualenv of its own: their pins (SQLAlchemy, oslo.*, eventlet) are not DIRAC's, and
# nothing from it is imported by the DIRAC environment (the tests start it as a subprocess).
# Regenerate the lock with:
#   python3 -m uv pip compile -q dev/openstack/requirements.in -o requirements/openstack-lock.txt --python-version 3.11
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=.venv-openstack
stamp_wanted=$(cat requirements/openstack-lock.txt dev/openstack/setup.sh | sha256sum | cut -d' ' -f1)
stamp_file=$venv/.jenniferdirac-stamp
if [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp_wanted" ]; then
    echo "setup: building $venv from requirements/openstack-lock.txt"
    [ -x $venv/bin/python ] || python3 -m uv venv -q --python 3.11 $venv
    python3 -m uv pip sync -q --python $venv/bin/python requirements/openstack-lock.txt
    echo "$stamp_wanted" > "$stamp_file"
fi
