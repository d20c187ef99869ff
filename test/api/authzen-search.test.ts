/**
 * The AuthZEN search APIs over real HTTP: a locked-down PDP (caller keys, an
 * issuer with a JWKS file, the servers registry), the default policy with
 * operator data that has a catalog, an inventory and listed subjects, and a
 * clock frozen at 2026-03-10T12:00:00Z. Every result is checked against the
 * evaluation API, and every candidate left out is checked to be denied.
 */
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { buildWasmBundle, scratchDir } from "../support/opa.ts";
import { postJson, startPdp, type RunningPdp } from "../support/pdp.ts";
import { generateTestKey, mint, type TestKey } from "../support/tokens.ts";

type Json = Record<string, unknown>;

interface SearchBody {
  results: Json[];
  page: { next_token: string; count: number };
}

const noonUtcMs = Date.UTC(2026, 2, 10, 12, 0, 0);
const nowS = noonUtcMs / 1000;
const issuer = "https://idp.test";
const resources = { files: "https://mcp.test/files", git: "https://mcp.test/git" };
const maxEvaluations = 4;
const keys = {
  pep: randomBytes(24).toString("base64url"),
  gateway: randomBytes(24).toString("base64url"),
  ops: randomBytes(24).toString("base64url"),
};
const sha256Hex = (text: string) => createHash("sha256").update(text).digest("hex");

/** Catalog (exact entries and globs), inventory and subjects: the candidates' sources. */
const operatorData = {
  tools: {
    "files/read_*": "read",
    "files/write_file": "write",
    "files/delete_*": "destructive",
    "git/push": "write",
  },
  inventory: { files: ["read_file", "read_dir", "delete_repo", "search"] },
  subjects: [
    { type: "user", id: "alice", properties: { scopes: ["mcp:read"], auth_time: nowS - 60 } },
    { type: "user", id: "bob" },
    {
      type: "agent",
      id: "bot",
      properties: { scopes: ["mcp:read", "mcp:write"], auth_time: nowS - 60 },
    },
  ],
};

/** The files candidates in their canonical order, and who may call which. */
const filesTools = [
  "files/delete_repo",
  "files/read_dir",
  "files/read_file",
  "files/search",
  "files/write_file",
];

const scratch = scratchDir();
let signingKey: TestKey;
let pdp: RunningPdp;

function configFile(): string {
  const jwksFile = join(scratch.dir, "jwks.json");
  writeFileSync(jwksFile, JSON.stringify({ keys: [signingKey.publicJwk] }));
  const file = join(scratch.dir, "config.json");
  writeFileSync(
    file,
    JSON.stringify({
      issuers: [{ issuer, jwks_file: jwksFile, algorithms: ["RS256"] }],
      servers: { files: { resource: resources.files }, git: { resource: resources.git } },
      callers: [
        { name: "pep", api_key_sha256: [sha256Hex(keys.pep)], permissions: ["authzen"] },
        {
          name: "gateway",
          api_key_sha256: [sha256Hex(keys.gateway)],
          permissions: ["authzen"],
          assert_subject: true,
        },
        { name: "forwarder", api_key_sha256: [sha256Hex(keys.ops)], permissions: ["forward_auth"] },
      ],
      ops: { open: true },
    }),
  );
  return file;
}

function env(): Record<string, string> {
  const data = join(scratch.dir, "data.json");
  writeFileSync(data, JSON.stringify(operatorData));
  return {
    PDP_CONFIG: join(scratch.dir, "config.json"),
    PDP_DATA: data,
    PDP_MAX_EVALUATIONS: String(maxEvaluations),
    PDP_PUBLIC_URL: "https://pdp.example.test",
  };
}

before(async () => {
  signingKey = await generateTestKey("RS256");
  configFile();
  pdp = await startPdp({ env: env(), clock: () => noonUtcMs });
});

after(async () => {
  await pdp.close();
  scratch.remove();
});

function token(claims: Json = {}): Promise<string> {
  return mint(signingKey, {
    iss: issuer,
    sub: "user-1",
    aud: resources.files,
    scope: "mcp:read",
    iat: nowS - 60,
    exp: nowS + 600,
    auth_time: nowS - 300,
    ...claims,
  });
}

const managed = { device: { trust: "managed" }, ip: "10.1.2.3" };

function resourceSearch(subjectToken: string, page?: Json, server = "files"): Json {
  return {
    subject: { type: "user", properties: { token: subjectToken } },
    action: { name: "tools/call" },
    resource: { type: "tool", properties: { server } },
    context: managed,
    ...(page === undefined ? {} : { page }),
  };
}

async function post(
  path: string,
  body: unknown,
  key = keys.pep,
): Promise<{ status: number; body: unknown }> {
  const headers: Record<string, string> = key === "" ? {} : { "x-api-key": key };
  return postJson(`${pdp.url}${path}`, body, headers);
}

async function search(kind: string, body: unknown, key = keys.pep): Promise<SearchBody> {
  const response = await post(`/access/v1/search/${kind}`, body, key);
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return response.body as SearchBody;
}

async function decisionOf(body: Json, key = keys.pep): Promise<boolean> {
  const response = await post("/access/v1/evaluation", body, key);
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return (response.body as { decision: boolean }).decision;
}

/** Each result allowed, and each candidate not returned denied, by the evaluation API itself. */
async function assertFaithful(
  kind: "resource" | "action" | "subject",
  request: Json,
  results: Json[],
  candidates: Json[],
  key = keys.pep,
): Promise<void> {
  const { page: _page, ...rest } = request;
  const returned = new Set(results.map(sortedJson));
  for (const candidate of candidates) {
    const allowed = await decisionOf({ ...rest, [kind]: candidate }, key);
    assert.equal(
      allowed,
      returned.has(sortedJson(candidate)),
      `${JSON.stringify(candidate)}: evaluation says ${allowed}`,
    );
  }
}

/** JSON with sorted keys: the policy answers objects with their keys in its own order. */
function sortedJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(sortedJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value).sort(([a], [b]) => a.localeCompare(b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${sortedJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function tool(id: string): Json {
  return { type: "tool", id };
}

describe("discovery", () => {
  test("the metadata advertises the three search endpoints", async () => {
    const response = await fetch(`${pdp.url}/.well-known/authzen-configuration`);
    const body = (await response.json()) as Json;
    assert.equal(
      body.search_resource_endpoint,
      "https://pdp.example.test/access/v1/search/resource",
    );
    assert.equal(body.search_action_endpoint, "https://pdp.example.test/access/v1/search/action");
    assert.equal(body.search_subject_endpoint, "https://pdp.example.test/access/v1/search/subject");
  });
});

describe("POST /access/v1/search/resource", () => {
  test("a reader finds the read tools of the catalog and the inventory, and nothing else", async () => {
    const request = resourceSearch(await token());
    const body = await search("resource", request);
    assert.deepEqual(body.results, [tool("files/read_dir"), tool("files/read_file")]);
    // Five candidates, four decisions per request: the page ends with a token.
    assert.notEqual(body.page.next_token, "");
    const rest = await search("resource", { ...request, page: { token: body.page.next_token } });
    assert.deepEqual(rest, { results: [], page: { next_token: "", count: 0 } });
    await assertFaithful("resource", request, body.results, filesTools.map(tool));
  });

  test("a writer finds the write tool too; results re-evaluate to true, the rest to false", async () => {
    const request = resourceSearch(await token({ scope: "mcp:read mcp:write" }), {
      limit: 3,
    });
    const first = await search("resource", request);
    assert.deepEqual(first.results, [tool("files/read_dir"), tool("files/read_file")]);
    const second = await search("resource", {
      ...request,
      page: { limit: 3, token: first.page.next_token },
    });
    assert.deepEqual(second.results, [tool("files/write_file")]);
    assert.equal(second.page.next_token, "");
    await assertFaithful(
      "resource",
      request,
      [...first.results, ...second.results],
      filesTools.map(tool),
    );
  });

  test("pages of one result walk every result once, in order", async () => {
    const request = resourceSearch(await token({ scope: "mcp:read mcp:write" }), {
      limit: 1,
    });
    const seen: Json[] = [];
    const tokens = new Set<string>();
    let next: string | undefined;
    for (let page = 0; page < 10; page++) {
      const body = await search("resource", {
        ...request,
        page: { limit: 1, ...(next === undefined ? {} : { token: next }) },
      });
      assert.ok(body.results.length <= 1);
      assert.equal(body.page.count, body.results.length);
      seen.push(...body.results);
      next = body.page.next_token;
      if (next === "") break;
      assert.ok(!tokens.has(next), "a page token repeats");
      tokens.add(next);
    }
    assert.equal(next, "", "pagination ended");
    assert.deepEqual(seen, [
      tool("files/read_dir"),
      tool("files/read_file"),
      tool("files/write_file"),
    ]);
  });

  test("a token for another server finds nothing", async () => {
    const request = resourceSearch(await token({ aud: resources.git }));
    const body = await search("resource", { ...request, page: { limit: 4 } });
    assert.deepEqual(body.results, []);
    const records = pdp.decisions.filter((d) => d.endpoint === "search").slice(-4);
    assert.equal(records.length, 4);
  });

  test("git's tools are git's: the exact catalog entry only", async () => {
    const request = resourceSearch(
      await token({ aud: resources.git, scope: "mcp:read mcp:write" }),
      undefined,
      "git",
    );
    const body = await search("resource", request);
    assert.deepEqual(body.results, [tool("git/push")]);
    assert.equal(body.page.next_token, "");
  });

  test("a resource search without a server finds nothing (no candidates)", async () => {
    const body = await search("resource", {
      subject: { type: "user", properties: { token: await token() } },
      action: { name: "tools/call" },
      resource: { type: "tool" },
      context: managed,
    });
    assert.deepEqual(body, { results: [], page: { next_token: "", count: 0 } });
  });
});

describe("page tokens are bound to their request", () => {
  test("replayed with other parameters, tampered or from another process: 400 page_token_invalid", async () => {
    const reader = await token();
    const request = resourceSearch(reader, { limit: 1 });
    const first = await search("resource", request);
    const issued = first.page.next_token;
    assert.notEqual(issued, "");
    // The same token continues the same request, whatever the limit.
    const again = await search("resource", { ...request, page: { limit: 2, token: issued } });
    assert.ok(Array.isArray(again.results));

    const replays: [string, string, Json][] = [
      ["another context", "resource", { ...request, context: { device: { trust: "compliant" } } }],
      ["another subject token", "resource", resourceSearch(await token({ sub: "user-2" }))],
      ["another server", "resource", resourceSearch(reader, undefined, "git")],
      ["another search kind", "action", { ...request, resource: tool("files/read_file") }],
    ];
    for (const [why, kind, body] of replays) {
      const response = await post(`/access/v1/search/${kind}`, {
        ...body,
        page: { limit: 1, token: issued },
      });
      assert.equal(response.status, 400, why);
      assert.equal((response.body as Json).code, "page_token_invalid", why);
    }
    const asGateway = await post(
      "/access/v1/search/resource",
      { ...request, page: { limit: 1, token: issued } },
      keys.gateway,
    );
    assert.equal((asGateway.body as Json).code, "page_token_invalid", "another caller");

    const text = Buffer.from(issued, "base64url").toString("utf8");
    const tampered = [
      Buffer.from(text.replace(/^p1\.\d+/, "p1.0"), "utf8").toString("base64url"),
      Buffer.from(text.replace(/^p1\.\d+/, "p1.3"), "utf8").toString("base64url"),
      `${issued.slice(0, -2)}${issued.endsWith("A") ? "B" : "A"}A`,
      "not a token",
      "x".repeat(513),
    ];
    for (const bad of tampered) {
      const response = await post("/access/v1/search/resource", {
        ...request,
        page: { limit: 1, token: bad },
      });
      assert.equal(response.status, 400, bad);
      const code = (response.body as Json).code;
      assert.ok(
        code === "page_token_invalid" || code === "invalid_request",
        `${bad}: ${String(code)}`,
      );
    }

    const other = await startPdp({ env: env(), clock: () => noonUtcMs });
    try {
      const response = await postJson(
        `${other.url}/access/v1/search/resource`,
        { ...request, page: { limit: 1, token: issued } },
        { "x-api-key": keys.pep },
      );
      assert.equal(response.status, 400);
      assert.equal((response.body as Json).code, "page_token_invalid", "another process");
    } finally {
      await other.close();
    }
  });
});

describe("limits and refusals", () => {
  test("page.limit above PDP_MAX_EVALUATIONS, zero or fractional: 400 invalid_request", async () => {
    const reader = await token();
    for (const limit of [maxEvaluations + 1, 0, 1.5, "2"]) {
      const response = await post("/access/v1/search/resource", resourceSearch(reader, { limit }));
      assert.equal(response.status, 400, String(limit));
      assert.deepEqual(
        [(response.body as Json).code, (response.body as Json).field],
        ["invalid_request", "/page/limit"],
      );
    }
  });

  test("a page makes at most PDP_MAX_EVALUATIONS decisions", async () => {
    const before = pdp.decisions.length;
    const body = await search("resource", resourceSearch(await token(), { limit: 4 }));
    assert.equal(pdp.decisions.length - before, maxEvaluations);
    assert.notEqual(body.page.next_token, "");
  });

  test("a large request gets fewer decisions per page, within PDP_MAX_BATCH_INPUT_BYTES", async () => {
    // Every candidate's input carries the request's ~400 KB context: 1 MiB allows 2 per page.
    const bounded = await startPdp({
      env: { ...env(), PDP_MAX_BATCH_INPUT_BYTES: String(1024 * 1024) },
      clock: () => noonUtcMs,
    });
    try {
      const request = {
        ...resourceSearch(await token(), { limit: 4 }),
        context: { ...managed, note: "x".repeat(400_000) },
      };
      const response = await postJson(`${bounded.url}/access/v1/search/resource`, request, {
        "x-api-key": keys.pep,
      });
      assert.equal(response.status, 200, JSON.stringify(response.body).slice(0, 300));
      assert.equal(bounded.decisions.length, 2);
      assert.notEqual((response.body as SearchBody).page.next_token, "");
    } finally {
      await bounded.close();
    }
  });

  test("without a caller key: 401; a caller without authzen: 403", async () => {
    const body = resourceSearch(await token());
    for (const kind of ["resource", "action", "subject"]) {
      const anonymous = await post(`/access/v1/search/${kind}`, body, "");
      assert.equal(anonymous.status, 401);
      assert.equal((anonymous.body as Json).code, "caller_unauthenticated");
      const forwarder = await post(`/access/v1/search/${kind}`, body, keys.ops);
      assert.equal(forwarder.status, 403);
      assert.equal((forwarder.body as Json).code, "caller_forbidden");
    }
  });

  test("the body rules of the evaluation API apply", async () => {
    const url = `${pdp.url}/access/v1/search/resource`;
    const plain = await fetch(url, {
      method: "POST",
      headers: { "content-type": "text/plain", "x-api-key": keys.pep },
      body: "{}",
    });
    assert.equal(plain.status, 415);
    const cases: [unknown, string, string | undefined][] = [
      ["{", "invalid_json", undefined],
      ['{"__proto__": {}}', "forbidden_key", undefined],
      [
        { subject: { type: "user", id: "a" }, action: { name: "tools/call" } },
        "invalid_request",
        "/resource",
      ],
      [
        { subject: { type: "user" }, action: { name: "tools/call" }, resource: { type: "tool" } },
        "invalid_request",
        "/subject/id",
      ],
    ];
    for (const [body, code, field] of cases) {
      const response = await post("/access/v1/search/resource", body);
      assert.equal(response.status, 400, JSON.stringify(body));
      assert.equal((response.body as Json).code, code, JSON.stringify(response.body));
      if (field !== undefined) assert.equal((response.body as Json).field, field);
    }
    const get = await fetch(url, { headers: { "x-api-key": keys.pep } });
    assert.equal(get.status, 405);
  });

  test("subject properties from a caller that may not assert them: 403, as on evaluation", async () => {
    const response = await post("/access/v1/search/resource", {
      subject: { type: "user", id: "alice", properties: { scopes: ["mcp:admin"] } },
      action: { name: "tools/call" },
      resource: { type: "tool", properties: { server: "files" } },
    });
    assert.equal(response.status, 403);
    assert.equal((response.body as Json).code, "subject_assertion_forbidden");
  });
});

describe("POST /access/v1/search/action", () => {
  test("on a tool: tools/call when the tool may be called, nothing otherwise", async () => {
    const reader = await token();
    const subject = { type: "user", properties: { token: reader } };
    const read = await search("action", {
      subject,
      resource: tool("files/read_file"),
      context: managed,
    });
    assert.deepEqual(read, {
      results: [{ name: "tools/call" }],
      page: { next_token: "", count: 1 },
    });
    const destroy = await search("action", {
      subject,
      resource: tool("files/delete_repo"),
      context: managed,
    });
    assert.deepEqual(destroy.results, []);
  });

  test("on the server: the methods a reader may use, each re-evaluating to true", async () => {
    const request = {
      subject: { type: "user", properties: { token: await token() } },
      resource: { type: "mcp_server", id: "files" },
      context: managed,
      page: { limit: maxEvaluations },
    };
    const found: Json[] = [];
    let next: string | undefined;
    for (let page = 0; page < 20 && next !== ""; page++) {
      const body = await search("action", {
        ...request,
        page: { limit: maxEvaluations, ...(next === undefined ? {} : { token: next }) },
      });
      found.push(...body.results);
      next = body.page.next_token;
    }
    assert.equal(next, "");
    const names = found.map((a) => a.name);
    assert.ok(names.includes("tools/list"), JSON.stringify(names));
    assert.ok(!names.includes("logging/setLevel"), "a write method is not the reader's");
    assert.ok(
      !names.some((n) => typeof n === "string" && (n.includes("*") || n.startsWith("mcp/"))),
    );
    for (const action of found) {
      const { page: _page, ...rest } = request;
      assert.equal(await decisionOf({ ...rest, action }), true, JSON.stringify(action));
    }
    assert.equal(
      await decisionOf({ ...request, page: undefined, action: { name: "logging/setLevel" } }),
      false,
    );
  });
});

describe("POST /access/v1/search/subject", () => {
  const request = {
    subject: { type: "user" },
    action: { name: "tools/call" },
    resource: tool("files/read_file"),
    context: managed,
  };

  test("a gateway finds the listed subjects the policy allows", async () => {
    const users = await search("subject", request, keys.gateway);
    assert.deepEqual(users.results, [operatorData.subjects[0]]);
    await assertFaithful(
      "subject",
      request,
      users.results,
      operatorData.subjects.slice(0, 2),
      keys.gateway,
    );
    const agents = await search(
      "subject",
      { ...request, subject: { type: "agent" } },
      keys.gateway,
    );
    assert.deepEqual(agents.results, [operatorData.subjects[2]]);
  });

  test("for a caller that may not assert subjects, no listed subject is authenticated", async () => {
    const users = await search("subject", request);
    assert.deepEqual(users, { results: [], page: { next_token: "", count: 0 } });
  });
});

describe("a custom bundle", () => {
  // Documents owned by their subject: the candidates are every document the data lists,
  // the decision allows the owner's only. A user with no scopes and no token: asserted.
  const policy = `package acme.authz

import rego.v1

default allow := false

allow if data.documents[input.resource.id].owner == input.subject.id

search_resource contains {"type": "document", "id": id} if some id, _ in data.documents

search_resource contains "not a candidate"
`;
  const documents = {
    documents: { d1: { owner: "alice" }, d2: { owner: "bob" }, d3: { owner: "alice" } },
  };
  const request = {
    subject: { type: "user", id: "alice" },
    action: { name: "read" },
    resource: { type: "document" },
  };

  test("answers search through its own search_* entrypoints, deciding each candidate", async () => {
    const dir = scratchDir();
    const running: RunningPdp[] = [];
    try {
      const withSearch = buildWasmBundle(join(dir.dir, "a"), { "p.rego": policy }, [
        "acme/authz/allow",
        "acme/authz/search_resource",
      ]);
      const without = buildWasmBundle(join(dir.dir, "b"), { "p.rego": policy }, [
        "acme/authz/allow",
      ]);
      const data = join(dir.dir, "documents.json");
      writeFileSync(data, JSON.stringify(documents));
      for (const bundle of [withSearch, without]) {
        running.push(
          await startPdp({
            env: { PDP_BUNDLE: bundle, PDP_ENTRYPOINT: "acme/authz/allow", PDP_DATA: data },
          }),
        );
      }
      const [searching, plain] = running as [RunningPdp, RunningPdp];

      const found = await postJson(`${searching.url}/access/v1/search/resource`, request);
      assert.equal(found.status, 200, JSON.stringify(found.body));
      assert.deepEqual(found.body, {
        results: [
          { type: "document", id: "d1" },
          { type: "document", id: "d3" },
        ],
        page: { next_token: "", count: 2 },
      });
      assert.ok(
        searching.logs.some((line) => line.message === "search candidates dropped"),
        "the answer that is no candidate is reported",
      );
      const metadata = (await (
        await fetch(`${searching.url}/.well-known/authzen-configuration`)
      ).json()) as Json;
      assert.equal(typeof metadata.search_resource_endpoint, "string");
      assert.equal(metadata.search_action_endpoint, undefined);

      // Without the entrypoint: not advertised, and nothing is found.
      const none = await postJson(`${plain.url}/access/v1/search/resource`, request);
      assert.deepEqual(none.body, { results: [], page: { next_token: "", count: 0 } });
      const plainMetadata = (await (
        await fetch(`${plain.url}/.well-known/authzen-configuration`)
      ).json()) as Json;
      assert.equal(plainMetadata.search_resource_endpoint, undefined);
    } finally {
      for (const pdp of running) await pdp.close();
      dir.remove();
    }
  });
});
