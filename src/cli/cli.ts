import { readFileSync } from "node:fs";
import { parseArgs, type ParseArgsConfig } from "node:util";
import type { ConfigurationFiles } from "./configuration.ts";

/** Where a command reads and writes: the process's own streams, or a test's. */
export interface CliIo {
  env: Readonly<Record<string, string | undefined>>;
  stdin: NodeJS.ReadableStream;
  stdout: { write: (text: string) => unknown };
  stderr: { write: (text: string) => unknown };
}

/**
 * Exit codes, one meaning each (documented in `--help` and the README).
 * `serve` keeps running; its process exits 0 after a clean stop, 1 when it
 * cannot start.
 */
export const exitCodes = {
  ok: 0,
  /** check: a problem found; serve: cannot start; decide: no decision (bad request, bad config). */
  failed: 1,
  /** Unknown command or option, missing or extra argument. */
  usage: 2,
  /** decide: the decision is a deny. */
  denied: 3,
} as const;

const fileOptions = {
  config: { type: "string" },
  data: { type: "string" },
  bundle: { type: "string" },
} as const satisfies ParseArgsConfig["options"];

const commonOptions = {
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "v" },
} as const satisfies ParseArgsConfig["options"];

const exitCodeHelp = `Exit codes:
  0  success (check: valid; decide: allowed)
  1  failure (serve: cannot start; check: problems found; decide: no decision)
  2  usage error (unknown command or option)
  3  decide: denied`;

const fileOptionHelp = `  --config FILE   the configuration file (instead of PDP_CONFIG)
  --data FILE     operator data merged over the bundle's data (instead of PDP_DATA)
  --bundle PATH   OPA bundle, .tar.gz or directory (instead of PDP_BUNDLE)`;

const commands = {
  serve: {
    summary: "run the PDP (what `npm start` runs; the default command)",
    usage: "mcp-pdp serve [--config FILE] [--data FILE] [--bundle PATH]",
    details:
      "Listens on HOST:PORT until SIGTERM (drains) or SIGINT. Every other setting is an environment\nvariable (README, Configuration).",
    options: fileOptions,
    positionals: false,
  },
  check: {
    summary: "validate the configuration and the policy as serve would, without listening",
    usage: "mcp-pdp check [--config FILE] [--data FILE] [--bundle PATH]",
    details:
      "Builds the configuration (environment and files), loads the policy, runs its config_errors\ncheck on the operator data and reads the TLS files; prints every problem and exits 1, or\nprints what would be served and exits 0. For CI before a deploy.",
    options: fileOptions,
    positionals: false,
  },
  decide: {
    summary: "decide one AuthZEN evaluation request, in process",
    usage: "mcp-pdp decide [--config FILE] [--data FILE] [--bundle PATH] [--json] [FILE|-]",
    details:
      "Reads one AuthZEN evaluation request (the body of POST /access/v1/evaluation) from FILE, or\nfrom stdin without FILE or with -, and answers it exactly as the PDP's API would (same\nchecks, same subject rules), without listening. When the configuration has callers, the\nrequest is sent as the caller whose API key is in PDP_API_KEY. Prints the decision, its\nreasons, risk and step-up; --json prints the API's response body instead.\n  --json          the AuthZEN response body as JSON (errors too, as {code, message})",
    options: { ...fileOptions, json: { type: "boolean" } },
    positionals: true,
  },
} as const;

export type CommandName = keyof typeof commands;

function isCommand(word: string): word is CommandName {
  return Object.hasOwn(commands, word);
}

/** The package version, read from package.json beside dist/ (or src/). */
export function packageVersion(): string {
  const manifest = JSON.parse(
    readFileSync(new URL("../../package.json", import.meta.url), "utf8"),
  ) as { version: string };
  return manifest.version;
}

function mainHelp(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  const list = Object.entries(commands)
    .map(([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`)
    .join("\n");
  return `mcp-pdp: a policy decision point for MCP tool calls

Usage: mcp-pdp [COMMAND] [OPTIONS]

Commands:
${list}

Without a command, mcp-pdp serves. Every command takes --help and --version.

${exitCodeHelp}
`;
}

function commandHelp(name: CommandName): string {
  const command = commands[name];
  return `${command.summary}

Usage: ${command.usage}

${command.details}

Options:
${fileOptionHelp}
  -h, --help      this help
  -v, --version   the version

${exitCodeHelp}
`;
}

/** What the arguments ask for, decided before anything else happens. */
export type Invocation =
  | { kind: "help"; text: string }
  | { kind: "version" }
  | { kind: "usage_error"; message: string }
  | { kind: "serve" | "check"; files: ConfigurationFiles }
  | { kind: "decide"; files: ConfigurationFiles; json: boolean; input: string | undefined };

/** Parses the arguments (after `node main.js`); reads nothing, starts nothing. */
export function parseInvocation(argv: readonly string[]): Invocation {
  const [first, ...rest] = argv;
  let name: CommandName = "serve";
  let args: readonly string[] = argv;
  if (first === "help") {
    const [topic, ...extra] = rest;
    if (topic === undefined) return { kind: "help", text: mainHelp() };
    if (!isCommand(topic) || extra.length > 0)
      return { kind: "usage_error", message: `unknown help topic: ${rest.join(" ")}` };
    return { kind: "help", text: commandHelp(topic) };
  }
  if (first !== undefined && !first.startsWith("-")) {
    if (!isCommand(first)) return { kind: "usage_error", message: `unknown command: ${first}` };
    name = first;
    args = rest;
  }
  const command = commands[name];
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: { ...commonOptions, ...command.options },
      allowPositionals: command.positionals,
      strict: true,
    });
  } catch (error) {
    return { kind: "usage_error", message: error instanceof Error ? error.message : String(error) };
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help === true)
    return { kind: "help", text: first === name ? commandHelp(name) : mainHelp() };
  if (values.version === true) return { kind: "version" };
  const files: ConfigurationFiles = {
    config: values.config as string | undefined,
    data: values.data as string | undefined,
    bundle: values.bundle as string | undefined,
  };
  if (name !== "decide") return { kind: name, files };
  if (parsed.positionals.length > 1)
    return { kind: "usage_error", message: "decide reads one request: give one FILE, or -" };
  const [input] = parsed.positionals;
  return {
    kind: "decide",
    files,
    json: values.json === true,
    input: input === "-" ? undefined : input,
  };
}

/**
 * Runs the command the arguments name. Resolves to the exit code, or to
 * undefined for `serve`, whose process keeps running and sets its own.
 * Commands are imported only when run: `--help` loads no server module.
 */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number | undefined> {
  const invocation = parseInvocation(argv);
  switch (invocation.kind) {
    case "help":
      io.stdout.write(invocation.text);
      return exitCodes.ok;
    case "version":
      io.stdout.write(`mcp-pdp ${packageVersion()}\n`);
      return exitCodes.ok;
    case "usage_error":
      io.stderr.write(`mcp-pdp: ${invocation.message}\nRun mcp-pdp --help for usage.\n`);
      return exitCodes.usage;
    case "serve": {
      const { serve } = await import("./serve.ts");
      await serve(io.env, invocation.files);
      return undefined;
    }
    case "check": {
      const { check } = await import("./check.ts");
      return check(io, invocation.files);
    }
    case "decide": {
      const { decide } = await import("./decide.ts");
      return decide(io, invocation);
    }
  }
}
