/**
 * The one dispatcher (http/dispatcher.ts) over a route table, on loopback:
 * the caller is authenticated once, from the headers, and travels in
 * ApiRequest; a handler reached without one fails closed; unknown paths,
 * wrong methods and compressed bodies are answered by the same stack as
 * everything else (there is no fallback any more); the metrics label comes
 * from the table. Then the same rules on the whole PDP: what the retired
 * lean/express parity test compared now has one answer.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { callerOf, type ApiRequest } from "../../src/api/api-types.ts";
import type { Caller } from "../../src/auth/caller.ts";
import { ApiError } from "../../src/errors.ts";
import { dispatcher } from "../../src/http/dispatcher.ts";
import { expressSurface } from "../../src/http/express-surface.ts";
import { pdpErrorResponse, type Route } from "../../src/http/route-table.ts";
import { Metrics } from "../../src/observability/metrics.ts";
import { repoRoot } from "../support/opa.ts";
import { startPdp, type RunningPdp } from "../support/pdp.ts";
import { rawExchange, head } from "./raw-http.ts";

const pep: Caller = { name: "pep", permissions: new Set(["authzen"]), assertSubject: false };

describe("the dispatcher over a route table", () => {
  let server: Server;
  let base: string;
  let port: number;
  const guardCalls: string[] = [];
  const failures: string[] = [];
  const seen: ApiRequest[] = [];
  const metrics = new Metrics({
    riskClasses: [],
    reasonCodes: [],
    actions: [],
    toolLabels: [],
    clientLabels: [],
    processMetrics: false,
  });

  before(async () => {
    const guard = (request: ApiRequest): Caller => {
      guardCalls.push(request.path);
      if (request.headers["x-api-key"] === "broken") throw new Error("authenticator bug");
      if (request.headers["x-api-key"] !== "k") {
        throw new ApiError("caller_unauthenticated", "no key", undefined, {
          "www-authenticate": "ApiKey",
        });
      }
      return pep;
    };
    const routes: Route[] = [
      {
        methods: ["POST"],
        path: "/decide",
        label: "evaluation",
        caller: guard,
        renderError: pdpErrorResponse,
        handler: (request) => {
          seen.push(request);
          return {
            status: 200,
            body: { caller: callerOf(request).name, body: request.body.toString("utf8") },
          };
        },
      },
      {
        // Miswired: the handler needs a caller its route does not authenticate.
        methods: ["POST"],
        path: "/miswired",
        label: "evaluation",
        renderError: pdpErrorResponse,
        handler: (request) => ({ status: 200, body: { caller: callerOf(request).name } }),
      },
      {
        methods: "any",
        path: "/relay/",
        prefix: true,
        label: "forward_auth",
        caller: guard,
        renderError: pdpErrorResponse,
        handler: (request) => ({
          status: 200,
          body: { method: request.method, path: request.path },
        }),
      },
      {
        methods: ["GET"],
        path: "/ops",
        label: "health",
        caller: guard,
        renderError: pdpErrorResponse,
        express: (_req, res) => {
          res.json({ status: "ok" });
        },
      },
    ];
    const onError = (error: unknown): void => {
      failures.push(error instanceof Error ? error.message : String(error));
    };
    server = createServer(
      dispatcher({
        routes,
        maxBodyBytes: 64,
        express: expressSurface(routes, onError),
        metrics,
        onError,
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
    base = `http://127.0.0.1:${port}`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const post = (path: string, headers: Record<string, string>, body: string | Buffer = "{}") =>
    fetch(`${base}${path}`, { method: "POST", headers, body });

  test("the caller is authenticated once and reaches the handler in ApiRequest.caller", async () => {
    guardCalls.length = 0;
    const response = await post("/decide", { "x-api-key": "k" }, "hello");
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { caller: "pep", body: "hello" });
    assert.deepEqual(guardCalls, ["/decide"], "one authentication per request");
    assert.equal(seen.at(-1)?.caller, pep);
  });

  test("a handler reached without a caller fails closed: 500, logged, never served", async () => {
    const before = failures.length;
    const response = await post("/miswired", {});
    assert.equal(response.status, 500);
    assert.equal(((await response.json()) as { code: string }).code, "internal_error");
    assert.match(failures.slice(before).join(), /reached its handler without a caller/);
  });

  test("a guard that throws something else than a refusal is a 500 and the body is never read", async () => {
    const before = seen.length;
    const response = await post("/decide", { "x-api-key": "broken" });
    assert.equal(response.status, 500);
    assert.equal(response.headers.get("connection"), "close");
    assert.equal(seen.length, before, "the handler never ran");
    assert.ok(failures.includes("authenticator bug"));
  });

  test("a refusal comes in the route's error shape, with its headers, the connection closed", async () => {
    const response = await post("/decide", {});
    assert.equal(response.status, 401);
    assert.equal(response.headers.get("www-authenticate"), "ApiKey");
    assert.equal(response.headers.get("connection"), "close");
    assert.deepEqual(await response.json(), { code: "caller_unauthenticated", message: "no key" });
  });

  test("an unknown path is a 404 and a wrong method a 405 with Allow, both before authentication", async () => {
    guardCalls.length = 0;
    for (const path of ["/nowhere", "/Decide", "/decide/", "/relay", "/opsx"]) {
      const response = await post(path, {});
      assert.equal(response.status, 404, path);
      assert.deepEqual(await response.json(), {
        code: "not_found",
        message: `no endpoint at ${path}`,
      });
    }
    const wrong = await fetch(`${base}/decide`, { method: "PUT", body: "{}" });
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.get("allow"), "POST");
    assert.equal(((await wrong.json()) as { code: string }).code, "method_not_allowed");
    assert.deepEqual(guardCalls, [], "no authentication for a request no route serves");
  });

  test("a 404 or 405 sent before its body closes the connection instead of reading the body", async () => {
    const answer = await rawExchange(port, {
      send: head("PUT", "/decide", { "content-type": "application/json" }, 1024 * 1024),
      waitMs: 3000,
    });
    assert.equal(answer.status, 405);
    assert.equal(answer.headers.connection, "close");
    assert.ok(answer.closedByServer && answer.elapsedMs < 2500);
  });

  test("a prefix route takes every method and every path below it", async () => {
    for (const method of ["GET", "DELETE", "PATCH", "OPTIONS"]) {
      const response = await fetch(`${base}/relay/files/mcp?x=1`, {
        method,
        headers: { "x-api-key": "k" },
      });
      assert.equal(response.status, 200, method);
      assert.deepEqual(await response.json(), { method, path: "/relay/files/mcp" });
    }
  });

  test("a compressed body is decoded by the one body reader, within the limit once decoded", async () => {
    const small = await post(
      "/decide",
      { "x-api-key": "k", "content-encoding": "gzip" },
      gzipSync("zipped"),
    );
    assert.equal(small.status, 200);
    assert.equal(((await small.json()) as { body: string }).body, "zipped");
    const bomb = await post(
      "/decide",
      { "x-api-key": "k", "content-encoding": "gzip" },
      gzipSync("0".repeat(100_000)),
    );
    assert.equal(bomb.status, 413);
    assert.equal(((await bomb.json()) as { code: string }).code, "body_too_large");
    const unknown = await post("/decide", { "x-api-key": "k", "content-encoding": "x-rot13" });
    assert.equal(unknown.status, 415);
    const corrupt = await post("/decide", { "x-api-key": "k", "content-encoding": "gzip" }, "{}");
    assert.equal(corrupt.status, 400);
    assert.equal(((await corrupt.json()) as { code: string }).code, "invalid_request");
  });

  test("the bytes on the wire are bounded too, and bytes that decode to nothing are no body", async () => {
    // 10 empty gzip members: 200 bytes on the wire (over the 64-byte limit), nothing decoded.
    const empties = Buffer.concat(Array.from({ length: 10 }, () => gzipSync(Buffer.alloc(0))));
    const padded = await post("/decide", { "x-api-key": "k", "content-encoding": "gzip" }, empties);
    assert.equal(padded.status, 413);
    assert.equal(((await padded.json()) as { code: string }).code, "body_too_large");
    // One empty member (20 bytes): sent, but decodes to nothing (attack 9).
    const nothing = await post(
      "/decide",
      { "x-api-key": "k", "content-encoding": "gzip" },
      gzipSync(Buffer.alloc(0)),
    );
    assert.equal(nothing.status, 400);
    assert.equal(((await nothing.json()) as { code: string }).code, "empty_body");
  });

  test("an express route is reached through the dispatcher: its caller checked, HEAD as GET", async () => {
    assert.equal((await fetch(`${base}/ops`)).status, 401);
    const ok = await fetch(`${base}/ops`, { headers: { "x-api-key": "k", "x-request-id": "r-1" } });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("x-request-id"), "r-1", "the dispatcher's request id");
    assert.deepEqual(await ok.json(), { status: "ok" });
    const headOnly = await fetch(`${base}/ops`, { method: "HEAD", headers: { "x-api-key": "k" } });
    assert.equal(headOnly.status, 200);
    assert.equal((await fetch(`${base}/ops`, { method: "POST", body: "" })).status, 405);
  });

  test("the metrics label of every request comes from the route table", async () => {
    const text = await metrics.registry.getSingleMetricAsString("mcp_pdp_http_requests_total");
    for (const label of ["evaluation", "forward_auth", "health", "other"]) {
      assert.match(text, new RegExp(`route="${label}"`), label);
    }
    assert.doesNotMatch(text, /route="metrics"|route="opa_data"/, "no route, no label");
  });
});

describe("the whole PDP: one answer per request", () => {
  let pdp: RunningPdp;
  const now = Date.UTC(2025, 10, 26, 10, 0, 0);
  const valid = {
    subject: {
      type: "user",
      id: "alice",
      properties: { scopes: ["mcp:write"], auth_time: now / 1000 - 60 },
    },
    action: { name: "tools/call" },
    resource: { type: "tool", id: "files/write_file" },
    context: { ip: "10.1.2.3", device: { trust: "managed" } },
  };
  const json = { "content-type": "application/json" };
  before(async () => {
    pdp = await startPdp({
      env: { PDP_DATA: join(repoRoot, "examples", "operator-data.yaml") },
      clock: () => now,
    });
  });
  after(async () => {
    await pdp.close();
  });

  test("a gzip body and a query string are decided like the plain request", async () => {
    for (const [path, headers, body] of [
      ["/access/v1/evaluation", json, JSON.stringify(valid)],
      ["/access/v1/evaluation?x=1", json, JSON.stringify(valid)],
      [
        "/access/v1/evaluation",
        { ...json, "content-encoding": "gzip" },
        gzipSync(JSON.stringify(valid)),
      ],
    ] as const) {
      const response = await fetch(`${pdp.url}${path}`, { method: "POST", headers, body });
      assert.equal(response.status, 200, path);
      assert.equal(((await response.json()) as { decision: boolean }).decision, true);
      assert.match(response.headers.get("x-decision-id") ?? "", /^[0-9a-f-]{36}$/);
    }
  });

  test("a well-formed X-Request-ID is echoed, anything else replaced, on every route", async () => {
    for (const path of ["/access/v1/evaluation", "/health", "/nowhere", "/v1/data/x"]) {
      const echoed = await fetch(`${pdp.url}${path}`, { headers: { "x-request-id": "one-1" } });
      assert.equal(echoed.headers.get("x-request-id"), "one-1", path);
      const replaced = await fetch(`${pdp.url}${path}`, {
        headers: { "x-request-id": "has space" },
      });
      assert.match(replaced.headers.get("x-request-id") ?? "", /^[0-9a-f-]{36}$/, path);
    }
  });

  test("wrong methods are 405 with Allow in each API's shape; unknown spellings of a path are 404", async () => {
    const cases: [string, string, string][] = [
      ["GET", "/access/v1/evaluation", "POST"],
      ["DELETE", "/access/v1/search/resource", "POST"],
      ["POST", "/.well-known/authzen-configuration", "GET"],
      ["PUT", "/v1/data/mcp/authz/decision", "GET, POST"],
      ["POST", "/health", "GET"],
    ];
    for (const [method, path, allow] of cases) {
      const response = await fetch(`${pdp.url}${path}`, { method });
      assert.equal(response.status, 405, `${method} ${path}`);
      assert.equal(response.headers.get("allow"), allow);
      const body = (await response.json()) as Record<string, unknown>;
      assert.equal(body.code, "method_not_allowed");
    }
    for (const path of [
      "/access/v1/evaluation/",
      "/ACCESS/v1/evaluation",
      "/v1/database",
      "/forward-auth",
    ]) {
      const response = await fetch(`${pdp.url}${path}`, {
        method: "POST",
        headers: json,
        body: "{}",
      });
      assert.equal(response.status, 404, path);
      assert.equal(((await response.json()) as { code: string }).code, "not_found");
    }
  });

  test("HEAD is GET without a body, on the dispatcher's routes and express's alike", async () => {
    for (const path of ["/.well-known/authzen-configuration", "/health", "/ready", "/metrics"]) {
      const response = await fetch(`${pdp.url}${path}`, { method: "HEAD" });
      assert.equal(response.status, 200, path);
      assert.equal(await response.text(), "");
    }
  });
});
