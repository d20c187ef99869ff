#!/usr/bin/env bash
# Prints the path of the pinned `vegeta` load generator, installing it when it
# is missing. Order: `vegeta` on PATH if it is the pinned version; the
# project-local copy in .tools/bin; otherwise `go install` into .tools/bin.
# Progress goes to stderr so callers can capture stdout.
#
# A release build reports its version (`vegeta -version` prints
# "Version: v12.13.0"); a `go install` build reports an empty version, so it
# is accepted when `go version -m` says it was built from the pinned module.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="12.13.0"
module="github.com/tsenart/vegeta/v12"
tools="$root/.tools/bin"

is_pinned() {
  local reported first built
  [ -x "$1" ] || return 1
  # Capture first: piping into `head` can kill vegeta with SIGPIPE under pipefail.
  reported="$("$1" -version 2>/dev/null)" || return 1
  first="${reported%%$'\n'*}"
  case "$first" in
    "Version: v$version" | "Version: $version") return 0 ;;
    "Version: ") ;; # no version stamped in: a go-installed build, checked below
    *) return 1 ;;
  esac
  command -v go >/dev/null 2>&1 || return 1
  built="$(go version -m "$1" 2>/dev/null)" || return 1
  grep -Eq "^[[:space:]]+path[[:space:]]+$module\$" <<<"$built" &&
    grep -Eq "^[[:space:]]+mod[[:space:]]+$module[[:space:]]+v$version([[:space:]]|\$)" <<<"$built"
}

if command -v vegeta >/dev/null 2>&1 && is_pinned "$(command -v vegeta)"; then
  command -v vegeta
  exit 0
fi
if is_pinned "$tools/vegeta"; then
  echo "$tools/vegeta"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  note=""
  if [ -x "$tools/vegeta" ]; then
    note="
($tools/vegeta reports no version; without Go it cannot be checked, so it is not used.)"
  fi
  cat >&2 <<MSG
error: the pinned load generator vegeta v$version is not available.$note
Install one of:
  - Go 1.22 or newer (https://go.dev/doc/install); this script then runs
      GOBIN=$tools go install $module@v$version
  - or the vegeta v$version release binary on PATH
      (https://github.com/tsenart/vegeta/releases/tag/v$version)
MSG
  exit 1
fi
echo "installing vegeta v$version with go install into $tools (about a minute, once)" >&2
mkdir -p "$tools"
GOBIN="$tools" go install "$module@v$version" >&2
if ! is_pinned "$tools/vegeta"; then
  echo "error: go install finished but $tools/vegeta is not $module v$version" >&2
  exit 1
fi
echo "$tools/vegeta"
