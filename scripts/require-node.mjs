// Runs first in `npm start` and `npm test`, under whatever Node.js is on PATH: an old runtime
// gets a message saying what to install instead of an obscure failure later. Plain JavaScript,
// so that it runs on the old runtime it refuses.
//
// `--sources`: the caller runs the TypeScript sources directly (`npm test`, the scripts), which
// needs Node.js's type stripping, on by default from 22.18. The built PDP needs 22.12.
const sources = process.argv.includes("--sources");
const [needMajor, needMinor] = sources ? [22, 18] : [22, 12];
const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
if (major < needMajor || (major === needMajor && minor < needMinor)) {
  console.error(
    [
      `mcp-pdp ${sources ? "development (running the TypeScript sources) " : ""}needs Node.js 24 LTS (or ${needMajor}.${needMinor} and newer); this is Node.js ${process.version}.`,
      "Install Node.js 24 from https://nodejs.org, or use the pinned build this repository installs:",
      '  export PATH="$(scripts/ensure-node.sh 24):$PATH"',
    ].join("\n"),
  );
  process.exit(1);
}
