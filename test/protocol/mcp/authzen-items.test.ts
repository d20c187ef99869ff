/**
 * The one MCP → AuthZEN mapping of forward-auth and the PEP library: action =
 * the MCP method, resource = what it targets, with the tool's arguments (up to
 * a size) and, where the server declares them, its annotations.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { authzenItemOf, toolResource } from "../../../src/protocol/mcp/authzen-items.ts";
import type { McpOperation } from "../../../src/protocol/mcp/operation.ts";

const options = { server: "files", maxArgumentBytes: 32 };

function operation(method: string, name?: string, args?: unknown): McpOperation {
  return { method, name, arguments: args, id: 1 };
}

describe("authzenItemOf", () => {
  test("a tools/call: the tool, its arguments", () => {
    assert.deepEqual(authzenItemOf(operation("tools/call", "read_file", { p: "/a" }), options), {
      action: { name: "tools/call" },
      resource: {
        type: "tool",
        id: "read_file",
        properties: { server: "files", tool: "read_file", arguments: { p: "/a" } },
      },
    });
  });

  test("arguments longer than maxArgumentBytes are omitted, and say so; 0 omits all", () => {
    const long = { p: "x".repeat(40) };
    assert.deepEqual(
      authzenItemOf(operation("tools/call", "t", long), options).resource.properties,
      { server: "files", tool: "t", arguments_omitted: true },
    );
    // The limit is inclusive: {"p":"…"} of exactly 32 characters passes.
    const exact = { p: "x".repeat(32 - '{"p":""}'.length) };
    assert.equal(JSON.stringify(exact).length, 32);
    assert.deepEqual(
      authzenItemOf(operation("tools/call", "t", exact), options).resource.properties.arguments,
      exact,
    );
    assert.equal(
      authzenItemOf(operation("tools/call", "t", {}), { ...options, maxArgumentBytes: 0 }).resource
        .properties.arguments_omitted,
      true,
    );
  });

  test("a tool nobody can see (headers only, or an opaque POST): hidden, the worst case", () => {
    for (const method of ["tools/call", "mcp/opaque"]) {
      assert.deepEqual(authzenItemOf(operation(method), options).resource, {
        type: "tool",
        id: "",
        properties: { server: "files", hidden: true },
      });
    }
  });

  test("annotations the server declares travel with the call, when they are an object", () => {
    const annotationsOf = (tool: string) =>
      tool === "read_file" ? { readOnlyHint: true } : undefined;
    assert.deepEqual(
      authzenItemOf(operation("tools/call", "read_file"), { ...options, annotationsOf }).resource
        .properties,
      { server: "files", tool: "read_file", annotations: { readOnlyHint: true } },
    );
    assert.deepEqual(toolResource("files", "t", ["not", "an", "object"]).properties, {
      server: "files",
      tool: "t",
    });
  });

  test("resources and prompts by their URI or name; null when a headers-only request hides it", () => {
    for (const method of ["resources/read", "resources/subscribe", "resources/unsubscribe"]) {
      assert.deepEqual(authzenItemOf(operation(method, "mem://a"), options).resource, {
        type: "resource",
        id: "mem://a",
        properties: { server: "files", uri: "mem://a" },
      });
    }
    assert.deepEqual(authzenItemOf(operation("prompts/get", "greet"), options).resource, {
      type: "prompt",
      id: "greet",
      properties: { server: "files", prompt: "greet" },
    });
    assert.deepEqual(authzenItemOf(operation("prompts/get"), options).resource.properties, {
      server: "files",
      prompt: null,
    });
  });

  test("tasks/get, tasks/result, tasks/update, tasks/cancel: the binding's task, by its id", () => {
    for (const method of ["tasks/get", "tasks/result", "tasks/update", "tasks/cancel"]) {
      assert.deepEqual(authzenItemOf(operation(method, "task-7"), options), {
        action: { name: method },
        resource: { type: "task", id: "task-7", properties: { server: "files", task: "task-7" } },
      });
    }
    assert.deepEqual(authzenItemOf(operation("tasks/cancel"), options).resource, {
      type: "task",
      id: "",
      properties: { server: "files", task: null },
    });
  });

  test("every other method (and the pseudo-methods) is about the server itself", () => {
    for (const method of [
      "tools/list",
      "initialize",
      "server/discover",
      "subscriptions/listen",
      "tasks/list",
      "mcp/stream",
      "mcp/response",
      "ping",
    ]) {
      assert.deepEqual(authzenItemOf(operation(method, "ignored"), options), {
        action: { name: method },
        resource: { type: "mcp_server", id: "files", properties: { server: "files" } },
      });
    }
  });
});
