#!/usr/bin/env bash
# `systemd-analyze verify` on deploy/'s units, with the ExecStart paths pointed at this
# checkout's pairpilot (verify insists the binaries exist). Skipped, saying so, without systemd.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "verify-units: systemd-analyze not installed; systemd units not checked (apt-get install systemd)"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for unit in deploy/*.service deploy/*.timer; do
  sed "s#/opt/pairpilot/.venv/bin/pairpilot#$PWD/.venv/bin/pairpilot#g" "$unit" > "$work/$(basename "$unit")"
done
systemd-analyze verify "$work"/*
echo "verify-units: deploy/*.service and *.timer verified"
