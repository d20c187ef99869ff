/**
 * No input kills the process through the response: a header value the PDP
 * would write that HTTP cannot carry (CR LF, characters beyond Latin-1, an
 * emoji, DEL, NUL) or an illegal header name makes node's setHeader throw;
 * on the lean path that throw was an unhandled rejection, which ends the
 * process. Every writer checks first: that request gets a 500
 * `internal_error` with none of the handler's headers, one log line naming
 * the header, and the server keeps serving. Routes the dispatcher serves and
 * routes it hands to express alike.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import type { RequestHandler } from "express";
import type { ApiRequest, ApiResponse } from "../../src/api/api-types.ts";
import { ApiError } from "../../src/errors.ts";
import { dispatcher } from "../../src/http/dispatcher.ts";
import { expressSurface } from "../../src/http/express-surface.ts";
import { pdpErrorResponse, type Route } from "../../src/http/route-table.ts";
import { Metrics } from "../../src/observability/metrics.ts";

/** Header values a token claim or a request could smuggle into a response. */
const illegal: Record<string, Record<string, string>> = {
  "CR LF (header injection)": { "x-pdp-subject": "user-1\r\nx-injected: yes" },
  "a lone LF": { "x-pdp-subject": "user-1\nx-injected: yes" },
  "non-Latin-1 (CJK)": { "x-pdp-subject": "用户-1" },
  "an emoji (astral plane)": { "x-pdp-subject": "user-😀" },
  DEL: { "x-pdp-subject": "user\x7f1" },
  NUL: { "x-pdp-subject": "user\x001" },
  "an illegal header name": { "x pdp subject": "user-1" },
};

/** The handler answers with the headers the request's `x-case` names. */
function handler(request: ApiRequest): ApiResponse {
  const name = request.headers["x-case"];
  if (name === "throws-api-error") {
    // An ApiError whose challenge header was built from something illegal.
    throw new ApiError("caller_unauthenticated", "no", undefined, {
      "www-authenticate": 'Bearer realm="用"',
    });
  }
  if (name === "unserializable") return { status: 200, body: { n: 1n } };
  const headers = typeof name === "string" ? illegal[name] : undefined;
  return {
    status: 200,
    headers: { "x-pdp-decision-id": "d-1", ...headers },
    body: { decision: true },
  };
}

/** The same cases on an express route: express's own setHeader throws, the dispatcher's 500 follows. */
const expressHandler: RequestHandler = (req, res) => {
  const name = req.headers["x-case"];
  if (name === "throws-api-error")
    throw new Error('response header "x-pdp-subject" is not a legal HTTP header value');
  if (name === "unserializable") {
    res.json({ n: 1n });
    return;
  }
  const headers = typeof name === "string" ? illegal[name] : undefined;
  res.set({ "x-pdp-decision-id": "d-1" });
  for (const [header, value] of Object.entries(headers ?? {})) {
    try {
      res.setHeader(header, value);
    } catch {
      // What express's res.set would throw, named without its value (as the PDP's own writer does).
      res.removeHeader("x-pdp-decision-id");
      throw new Error(`response header ${JSON.stringify(header)} is not a legal HTTP header`);
    }
  }
  res.json({ decision: true });
};

describe("a response that cannot be written is a 500, never a crash", () => {
  let server: Server;
  let base: string;
  const failures: string[] = [];

  before(async () => {
    const routes: Route[] = [
      { methods: ["POST"], path: "/lean", label: "other", renderError: pdpErrorResponse, handler },
      {
        methods: ["POST"],
        path: "/express",
        label: "other",
        renderError: pdpErrorResponse,
        express: expressHandler,
      },
    ];
    const onError = (error: unknown): void => {
      failures.push(error instanceof Error ? error.message : String(error));
    };
    server = createServer(
      dispatcher({
        routes,
        maxBodyBytes: 1024,
        express: expressSurface(routes, onError),
        metrics: new Metrics({
          riskClasses: [],
          reasonCodes: [],
          actions: [],
          toolLabels: [],
          clientLabels: [],
          processMetrics: false,
        }),
        onError,
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  async function post(path: string, testCase: string) {
    const response = await fetch(`${base}${path}`, {
      method: "POST",
      headers: { "x-case": testCase },
      body: "{}",
    });
    return {
      status: response.status,
      headers: response.headers,
      body: (await response.json()) as Record<string, unknown>,
    };
  }

  for (const path of ["/lean", "/express"]) {
    for (const testCase of Object.keys(illegal)) {
      test(`${path}: ${testCase} → 500 internal_error, logged, and the next request is served`, async () => {
        const before = failures.length;
        const answer = await post(path, testCase);
        assert.equal(answer.status, 500);
        assert.equal(answer.body.code, "internal_error");
        assert.equal(
          answer.headers.get("x-pdp-decision-id"),
          null,
          "none of the handler's headers",
        );
        assert.equal(answer.headers.get("x-injected"), null);
        assert.ok(answer.headers.get("x-request-id"), "the request id still comes back");
        const logged = failures.slice(before);
        assert.equal(logged.length, 1, JSON.stringify(logged));
        assert.match(
          logged[0] ?? "",
          /response header "x[ -]pdp[ -]subject" is not a legal HTTP header/,
        );
        // The value itself never reaches the log (it may be a token, and it holds CR LF).
        assert.doesNotMatch(logged[0] ?? "", /user-1|用户|x-injected/);
        const next = await post(path, "none");
        assert.equal(next.status, 200);
        assert.equal(next.headers.get("x-pdp-decision-id"), "d-1");
      });
    }

    test(`${path}: an error whose own headers are illegal → 500`, async () => {
      const answer = await post(path, "throws-api-error");
      assert.equal(answer.status, 500);
      assert.equal(answer.body.code, "internal_error");
      assert.equal(answer.headers.get("www-authenticate"), null);
      assert.equal((await post(path, "none")).status, 200);
    });

    test(`${path}: a body JSON cannot serialize → 500`, async () => {
      const answer = await post(path, "unserializable");
      assert.equal(answer.status, 500);
      assert.equal(answer.body.code, "internal_error");
      assert.equal((await post(path, "none")).status, 200);
    });
  }
});
