import { Writable } from "node:stream";
import { buildApp, type App } from "../app.ts";
import type { Config } from "../config/index.ts";
import { noDecisionLog } from "../observability/decision-log.ts";
import { createLogger } from "../observability/logger.ts";

/** A diagnostics line the app logged while it was built or used: its level and message. */
export interface LoggedLine {
  level: string;
  message: string;
  /** The line as logged, for details. */
  fields: Record<string, unknown>;
}

/**
 * Builds the app from `config` exactly as serve does (same composition
 * root), for a command that answers in process and never listens. It records
 * no decisions (a command's output is its answer, not a decision log) and
 * hands every warning and error the app logs to `onLogged` instead of a log
 * destination.
 * Throws StartupError with every problem, as serve would refuse.
 */
export async function buildOfflineApp(
  config: Config,
  onLogged: (line: LoggedLine) => void,
): Promise<App> {
  const lines = new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _encoding, callback) {
      for (const text of chunk.toString().split("\n")) {
        if (text === "") continue;
        const fields = JSON.parse(text) as Record<string, unknown>;
        onLogged({ level: String(fields.level), message: String(fields.message), fields });
      }
      callback();
    },
  });
  const logger = createLogger({ level: "warn", stream: lines });
  return buildApp({ config, logger, decisionLog: noDecisionLog, processMetrics: false });
}
