#!/usr/bin/env bash
# Install everything the tests need, then run them. This is README command (b)
# and exactly what .ci/run calls. Safe to run repeatedly: installs are skipped
# when already present.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
# Everything the suite runs or QEMU opens must come from a package named above
# (or one of their Depends): what a fresh machine would lack fails here, early.
python3 scripts/check-clean-install.py
python3 -m pip install --quiet --root-user-action=ignore --disable-pip-version-check -e '.[test]'
python3 -m ruff check kvmpy tests benchmarks scripts
python3 -m pytest -q -ra "$@"
