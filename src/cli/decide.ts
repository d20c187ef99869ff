import { createReadStream } from "node:fs";
import { authzenPaths } from "../api/authzen-api.ts";
import type { ApiRequest } from "../api/api-types.ts";
import { describeThrown, StartupError } from "../errors.ts";
import { exitCodes, type CliIo } from "./cli.ts";
import { configurationOf, type ConfigurationFiles } from "./configuration.ts";
import { buildOfflineApp } from "./offline-app.ts";

export interface DecideOptions {
  files: ConfigurationFiles;
  /** Print the API's response body instead of the readable summary. */
  json: boolean;
  /** The request file; stdin when undefined. */
  input: string | undefined;
}

/**
 * `mcp-pdp decide`: one AuthZEN evaluation request, answered in process by
 * the same API the listener serves (body checks, schema, subject rules,
 * caller authentication with PDP_API_KEY when callers are configured). Exit 0
 * allowed, 3 denied, 1 when there is no decision (the request or the setup
 * was refused: the reason goes to stderr, or to stdout as JSON with --json).
 */
export async function decide(io: CliIo, options: DecideOptions): Promise<number> {
  if (options.input === undefined && (io.stdin as { isTTY?: boolean }).isTTY === true) {
    // A person at a terminal, not a pipe: say why nothing happens yet.
    io.stderr.write("mcp-pdp decide: reading the request from stdin (end it with Ctrl-D)\n");
  }
  let app;
  let config;
  try {
    // Errors only: the warnings are about serving (caller authentication off, /metrics
    // closed), which a one-off answer in process does not do; check prints them.
    config = configurationOf(io.env, options.files);
    app = await buildOfflineApp(config, (line) => {
      if (line.level === "error") io.stderr.write(`error: ${line.message}\n`);
    });
  } catch (error) {
    if (!(error instanceof StartupError)) throw error;
    io.stderr.write(
      `mcp-pdp decide: cannot build the PDP (${error.code})\n${error.problems.map((p) => `  - ${p}\n`).join("")}`,
    );
    return exitCodes.failed;
  }
  // At most one byte past the body limit is read: the API then answers 413 as over HTTP, and a
  // request file of any size (or /dev/zero) costs no more than that.
  const maxBytes = config.limits.maxBodyBytes;
  let body: Buffer;
  try {
    const source = options.input === undefined ? io.stdin : createReadStream(options.input);
    body = await readAtMost(source, maxBytes + 1);
  } catch (error) {
    io.stderr.write(`mcp-pdp decide: cannot read the request: ${describeThrown(error)}\n`);
    return exitCodes.failed;
  }
  const apiKey = io.env.PDP_API_KEY;
  const request: ApiRequest = {
    method: "POST",
    path: authzenPaths.evaluation,
    headers: {
      "content-type": "application/json",
      ...(apiKey === undefined || apiKey === "" ? {} : { "x-api-key": apiKey }),
    },
    body,
  };
  // Through the listener's own route table: the same caller check and error bodies as over HTTP.
  const response = await app.answer(request);
  if (response.status !== 200) {
    const refusal = response.body as { code: string; message: string; field?: string };
    if (options.json) io.stdout.write(`${JSON.stringify(refusal)}\n`);
    else
      io.stderr.write(
        `mcp-pdp decide: refused (${response.status} ${refusal.code}): ${refusal.message}${refusal.field === undefined ? "" : ` at ${refusal.field}`}\n`,
      );
    return exitCodes.failed;
  }
  const answer = response.body as AuthzenAnswer;
  io.stdout.write(options.json ? `${JSON.stringify(answer)}\n` : readable(answer));
  return answer.decision ? exitCodes.ok : exitCodes.denied;
}

/** The AuthZEN evaluation response as the API renders it. */
interface AuthzenAnswer {
  decision: boolean;
  context: {
    id: string;
    reasons: { code: string; admin: string; user: string }[];
    risk: { class: string; source: string } | null;
    obligations: Record<string, unknown>;
  };
}

/** The answer for a person: the decision, each reason, the risk, the step-up, the id. */
function readable(answer: AuthzenAnswer): string {
  const { context } = answer;
  const lines = [`decision: ${answer.decision ? "allow" : "deny"}`];
  if (context.reasons.length > 0) {
    lines.push("reasons:");
    for (const reason of context.reasons) {
      lines.push(`  - ${reason.code}: ${reason.admin}`, `    user: ${reason.user}`);
    }
  }
  const risk = context.risk;
  lines.push(risk === null ? "risk: none" : `risk: ${risk.class} (from ${risk.source})`);
  const { step_up: stepUp, ...others } = context.obligations;
  if (typeof stepUp === "object" && stepUp !== null) {
    const terms = Object.entries(stepUp).map(
      ([key, value]) => `${key} ${Array.isArray(value) ? value.join(",") : String(value)}`,
    );
    lines.push(`step-up: ${terms.join("; ")}`);
  }
  if (Object.keys(others).length > 0) lines.push(`obligations: ${JSON.stringify(others)}`);
  lines.push(`decision id: ${context.id}`, "");
  return lines.join("\n");
}

/** Reads a stream until it ends or `limit` bytes have come, then stops it. */
async function readAtMost(stream: NodeJS.ReadableStream, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of stream) {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    chunks.push(bytes);
    received += bytes.length;
    // Leaving the loop ends the iteration, which destroys the stream.
    if (received >= limit) break;
  }
  return Buffer.concat(chunks).subarray(0, limit);
}
