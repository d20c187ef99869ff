// Runs first in `npm start` and `npm test`, under whatever Node.js is on PATH: an old runtime
// gets a message saying what to install instead of an obscure failure later. Plain JavaScript,
// so that it runs on the old runtime it refuses.
const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  console.error(
    [
      `mcp-pdp needs Node.js 24 LTS (or 22.12 and newer); this is Node.js ${process.version}.`,
      "Install Node.js 24 from https://nodejs.org, or use the pinned build this repository installs:",
      '  export PATH="$(scripts/ensure-node.sh 24):$PATH"',
    ].join("\n"),
  );
  process.exit(1);
}
