#!/usr/bin/env bash
# Prints the path of the pinned `opa` CLI, installing it when it is missing.
# Order: `opa` on PATH if it is the pinned version; the project-local copy in
# .tools/bin; otherwise `go install` into .tools/bin. Progress goes to stderr
# so callers can capture stdout.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="$(tr -d '[:space:]' < "$root/.opa-version")"
tools="$root/.tools/bin"

is_pinned() {
  local reported
  [ -x "$1" ] || return 1
  # Capture first: piping into `head` can kill opa with SIGPIPE under pipefail.
  reported="$("$1" version 2>/dev/null)" || return 1
  [ "${reported%%$'\n'*}" = "Version: $version" ]
}

if command -v opa >/dev/null 2>&1 && is_pinned "$(command -v opa)"; then
  command -v opa
  exit 0
fi
if is_pinned "$tools/opa"; then
  echo "$tools/opa"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  cat >&2 <<MSG
error: the pinned OPA CLI v$version is not available.
Install one of:
  - Go 1.24 or newer (https://go.dev/doc/install); this script then runs
      go install github.com/open-policy-agent/opa@v$version
  - or the opa v$version binary on PATH (https://www.openpolicyagent.org/docs/#running-opa)
MSG
  exit 1
fi
echo "installing opa v$version with go install into $tools (a few minutes, once)" >&2
mkdir -p "$tools"
GOBIN="$tools" go install "github.com/open-policy-agent/opa@v$version" >&2
if ! is_pinned "$tools/opa"; then
  echo "error: go install finished but $tools/opa does not report Version: $version" >&2
  exit 1
fi
echo "$tools/opa"
