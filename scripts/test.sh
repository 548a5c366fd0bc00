#!/usr/bin/env bash
# Install everything the tests need, then run them. This is README command (b)
# and exactly what .ci/run calls. Safe to run repeatedly: installs are skipped
# when already present.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
python3 -m pip install --quiet --root-user-action=ignore --disable-pip-version-check -e '.[test]'
python3 -m ruff check kvmpy tests benchmarks
python3 -m pytest -q -ra "$@"
