/**
 * The PDP's caller is authenticated from the headers before a body is read,
 * on every route that needs one (http/dispatcher.ts serves them all):
 * a client without credentials that announces a 1 MiB body and withholds it
 * gets its 401/403 at once, and the connection is closed behind it, so it can
 * make the PDP neither buffer the body nor hold the socket.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { repoRoot, scratchDir } from "../support/opa.ts";
import { startPdp, type RunningPdp } from "../support/pdp.ts";
import { codeOf, head, rawExchange } from "./raw-http.ts";

const scratch = scratchDir();
const keys = {
  pep: randomBytes(24).toString("base64url"),
  gateway: randomBytes(24).toString("base64url"),
  ops: randomBytes(24).toString("base64url"),
};
const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");
const configFile = join(scratch.dir, "pdp-config.json");
writeFileSync(
  configFile,
  JSON.stringify({
    callers: [
      { name: "pep", api_key_sha256: [sha256(keys.pep)], permissions: ["authzen", "forward_auth"] },
      {
        name: "gateway",
        api_key_sha256: [sha256(keys.gateway)],
        permissions: ["opa_data"],
        assert_subject: true,
      },
    ],
    ops: { api_key_sha256: [sha256(keys.ops)] },
  }),
);

const mib = 1024 * 1024;
/** Announced, never sent in full: a client that means to hold the connection. */
const partialBody = Buffer.alloc(1000, 0x20);

interface Route {
  name: string;
  method: string;
  path: string;
  headers?: Record<string, string>;
  /** A key whose caller lacks this route's permission (403). */
  forbiddenKey: string;
}

const routes: Route[] = [
  {
    name: "AuthZEN evaluation",
    method: "POST",
    path: "/access/v1/evaluation",
    forbiddenKey: keys.gateway,
  },
  {
    name: "AuthZEN evaluations",
    method: "POST",
    path: "/access/v1/evaluations",
    forbiddenKey: keys.gateway,
  },
  {
    name: "forward-auth",
    method: "POST",
    path: "/forward-auth/files/mcp",
    forbiddenKey: keys.gateway,
  },
  {
    name: "forward-auth, any method",
    method: "PUT",
    path: "/forward-auth/files/mcp",
    forbiddenKey: keys.gateway,
  },
  {
    name: "OPA Data API POST",
    method: "POST",
    path: "/v1/data/mcp/authz/decision",
    forbiddenKey: keys.pep,
  },
  {
    name: "OPA Data API GET with a body",
    method: "GET",
    path: "/v1/data/mcp/authz/decision",
    forbiddenKey: keys.pep,
  },
  // A compressed body is inflated by the one body reader, and only once the caller is known.
  {
    name: "gzip body",
    method: "POST",
    path: "/access/v1/evaluation",
    headers: { "content-encoding": "gzip" },
    forbiddenKey: keys.gateway,
  },
];

async function announceAndHold(pdp: RunningPdp, route: Route, key: string | undefined) {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    ...route.headers,
    ...(key === undefined ? {} : { "x-api-key": key }),
  };
  const port = Number(new URL(pdp.url).port);
  return rawExchange(port, {
    send: Buffer.concat([Buffer.from(head(route.method, route.path, headers, mib)), partialBody]),
    waitMs: 5000,
  });
}

{
  describe("the dispatcher", () => {
    let pdp: RunningPdp;
    before(async () => {
      pdp = await startPdp({
        env: { PDP_CONFIG: configFile, PDP_DATA: join(repoRoot, "examples", "operator-data.yaml") },
      });
    });
    after(async () => {
      await pdp.close();
    });

    for (const route of routes) {
      test(`${route.name}: no key → 401 at once, body unread, connection closed`, async () => {
        const answer = await announceAndHold(pdp, route, undefined);
        assert.equal(answer.status, 401, JSON.stringify(answer));
        assert.equal(codeOf(answer.body), "caller_unauthenticated");
        assert.match(answer.headers["www-authenticate"] ?? "", /^ApiKey realm="mcp-pdp"/);
        assert.equal(answer.headers.connection, "close");
        assert.ok(answer.closedByServer, "the PDP closed the connection");
        assert.ok(answer.elapsedMs < 3000, `closed after ${answer.elapsedMs} ms`);
      });

      test(`${route.name}: an unknown key → 401, a caller without the permission → 403, both at once`, async () => {
        const unknown = await announceAndHold(pdp, route, "not-a-key");
        assert.equal(unknown.status, 401);
        assert.ok(unknown.closedByServer);
        const forbidden = await announceAndHold(pdp, route, route.forbiddenKey);
        assert.equal(forbidden.status, 403, JSON.stringify(forbidden));
        assert.equal(codeOf(forbidden.body), "caller_forbidden");
        assert.equal(forbidden.headers.connection, "close");
        assert.ok(forbidden.closedByServer && forbidden.elapsedMs < 3000);
      });
    }

    test("while a client without a key is refused at once, an authenticated caller's body is read and decided", async () => {
      const stalled = await announceAndHold(pdp, routes[0] as Route, undefined);
      assert.equal(stalled.status, 401);
      assert.ok(stalled.closedByServer && stalled.elapsedMs < 3000);
      const body = JSON.stringify({
        subject: { type: "user", id: "alice", properties: { scopes: ["mcp:read"] } },
        action: { name: "ping" },
        resource: { type: "mcp_server", id: "files" },
      });
      const response = await fetch(`${pdp.url}/access/v1/evaluation`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": keys.pep },
        body,
      });
      // The pep may not assert subjects: refused for that, after its body was read.
      assert.equal(response.status, 403);
      assert.equal(
        ((await response.json()) as { code: string }).code,
        "subject_assertion_forbidden",
      );
    });

    test("Expect: 100-continue: no 100 before the caller is admitted; 100, then the answer, after", async () => {
      const port = Number(new URL(pdp.url).port);
      const expecting = (key: string | undefined) =>
        rawExchange(port, {
          send: head(
            "POST",
            "/access/v1/evaluation",
            {
              "content-type": "application/json",
              expect: "100-continue",
              ...(key === undefined ? {} : { "x-api-key": key }),
            },
            mib,
          ),
          waitMs: 2000,
        });
      // Node would say 100 before any handler ran (attack 9), inviting the body of a stranger.
      const stranger = await expecting(undefined);
      assert.equal(stranger.status, 401, JSON.stringify(stranger));
      assert.ok(stranger.closedByServer && stranger.elapsedMs < 1500);
      const caller = await expecting(keys.pep);
      assert.equal(caller.status, 100, "the admitted caller is invited to send its body");
      assert.equal(caller.closedByServer, false, "and the PDP waits for it");
    });

    test("a refused ops request closes its connection too", async () => {
      const port = Number(new URL(pdp.url).port);
      for (const path of ["/metrics", "/health", "/ready"]) {
        const answer = await rawExchange(port, { send: head("GET", path, {}), waitMs: 5000 });
        assert.equal(answer.status, 401, path);
        assert.equal(answer.headers.connection, "close", path);
        assert.ok(answer.closedByServer, path);
      }
    });
  });
}

after(() => {
  scratch.remove();
});
