#!/usr/bin/env bash
# Re-resolve the lock files from pyproject.toml's ranges (run after changing a dependency, and
# commit the result). requirements.lock: what the image installs; requirements-dev.lock: the
# same pins plus the dev extras, what `make setup` and CI install. Both hold the build backend
# (setuptools), which installs pairpilot itself without reaching for an unpinned one.
# Both carry every file's sha256, and are resolved from PyPI only, for Linux, macOS and
# Windows on Python 3.12 and 3.13. Needs uv (pip install uv).
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-uv}
common=(--universal --python-version 3.12 --generate-hashes --index-url https://pypi.org/simple
        --no-header --quiet)
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
printf 'setuptools>=77\nwheel\n' > "$build/build-backend.txt"  # as pyproject's build-system
"$uv" pip compile "${common[@]}" pyproject.toml "$build/build-backend.txt" -o requirements.lock
"$uv" pip compile "${common[@]}" pyproject.toml "$build/build-backend.txt" --extra dev \
  --constraint requirements.lock -o requirements-dev.lock
sed -i "s#$build/##" requirements.lock requirements-dev.lock
echo "lock: requirements.lock and requirements-dev.lock written"
