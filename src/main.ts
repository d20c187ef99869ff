#!/usr/bin/env node
/**
 * The `mcp-pdp` executable (`bin`, `npm start`, the container's command):
 * `serve` (the default), `check`, `decide`. Arguments are parsed before
 * anything is read or started; see `mcp-pdp --help`.
 */
import { runCli } from "./cli/cli.ts";

const code = await runCli(process.argv.slice(2), {
  env: process.env,
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
});
// serve sets its own exit code when it stops; every other command is done.
if (code !== undefined) process.exitCode = code;
