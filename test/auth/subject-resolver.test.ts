/**
 * SubjectResolver used as a library (no AuthZEN API in front): the token is
 * verified against the server the resource names, read from the id as the
 * API reads it, and a resource of no registered server accepts no token.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Caller } from "../../src/auth/caller.ts";
import type { TokenVerifier, VerifiedToken } from "../../src/auth/jwt-verifier.ts";
import type { ServerSettings } from "../../src/config/index.ts";
import { ServerRegistry } from "../../src/auth/servers.ts";
import { SubjectResolver } from "../../src/auth/subject-resolver.ts";
import type { AccessRequest } from "../../src/decision/decision.ts";

const server = (name: string): ServerSettings => ({
  name,
  resource: `https://mcp.test/${name}`,
  resourceMetadata: `https://mcp.test/.well-known/oauth-protected-resource/${name}`,
  enforcesMcpHeaders: false,
  speaksMcp20260728: false,
  proxy: undefined,
});

const caller: Caller = { name: "pep", permissions: new Set(["authzen"]), assertSubject: false };

test("the audience is the resource of the server the id names; no server, no token", async () => {
  const audiences: string[] = [];
  const verifier: TokenVerifier = {
    verify(_token, _nowMs, audience) {
      audiences.push(audience);
      return Promise.resolve({
        issuer: {
          subjectType: { claim: undefined, clientCredentials: "service", default: "user" },
        },
        claims: { sub: "alice", exp: 2_000_000_000, iss: "https://idp.test" },
      } as unknown as VerifiedToken);
    },
  };
  const resolver = new SubjectResolver(
    verifier,
    new ServerRegistry([server("files"), server("git")]),
  );
  const request = (resource: AccessRequest["resource"]): AccessRequest => ({
    subject: { type: "user", id: "", properties: { token: "t" } },
    action: { name: "tools/call" },
    resource,
    context: {},
  });
  for (const resource of [
    { type: "tool", id: "files/read_file" },
    { type: "tool", id: "read_file", properties: { server: "files" } },
    { type: "mcp_server", id: "files" },
  ]) {
    const resolved = await resolver.resolve(request(resource), caller, 0);
    assert.equal(resolved.subject.id, "alice", JSON.stringify(resource));
  }
  assert.deepEqual(audiences, Array(3).fill("https://mcp.test/files"));
  for (const resource of [
    { type: "tool", id: "nope/read_file" },
    { type: "tool", id: "read_file" },
  ]) {
    const resolved = await resolver.resolve(request(resource), caller, 0);
    const error = resolved.subject.properties?.token_error as { code: string };
    assert.equal(error.code, "server_unknown", JSON.stringify(resource));
  }
  assert.equal(audiences.length, 3, "no verification without a registered server");
});
