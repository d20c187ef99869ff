/**
 * The MCP server the conformance suite's server scenarios test: the official
 * 1.x SDK (McpServer, its handlers set on the protocol server beneath it, so
 * that every tool's `inputSchema` is sent exactly as written, JSON Schema
 * 2020-12 keywords included, rather than derived from zod) on Streamable
 * HTTP, stateful (one session per `initialize`, `Mcp-Session-Id`), with an
 * event store so that streams can be resumed (`Last-Event-ID`), on express on
 * 127.0.0.1 behind the SDK's localhost Host validation (DNS rebinding).
 *
 * Written from the scenarios' own descriptions (`conformance list --server`,
 * each scenario's "Server Implementation Requirements"). With `pep`, every
 * MCP request passes the PEP library first, as README "Enforcing in an MCP
 * server (library)" mounts it.
 */
import { randomUUID } from "node:crypto";
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { crc32, deflateSync } from "node:zlib";
import { createMcpExpressApp } from "@modelcontextprotocol/sdk/server/express.js";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import {
  StreamableHTTPServerTransport,
  type EventStore,
} from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import {
  CallToolRequestSchema,
  CompleteRequestSchema,
  CreateMessageResultSchema,
  ElicitResultSchema,
  ErrorCode,
  GetPromptRequestSchema,
  ListPromptsRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListResourcesRequestSchema,
  ListToolsRequestSchema,
  LoggingLevelSchema,
  McpError,
  ReadResourceRequestSchema,
  SetLevelRequestSchema,
  SubscribeRequestSchema,
  UnsubscribeRequestSchema,
  isInitializeRequest,
  type CallToolResult,
  type ElicitRequest,
  type GetPromptResult,
  type JSONRPCMessage,
  type LoggingLevel,
  type ServerNotification,
  type ServerRequest,
  type Tool,
} from "@modelcontextprotocol/sdk/types.js";
import type { Request, RequestHandler, Response } from "express";
import type { McpAuthorizationMiddleware } from "../../src/pep/index.ts";

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/** A 1×1 red PNG, built here (chunks with their CRCs) rather than pasted as opaque base64. */
function redPixelPng(): string {
  const chunk = (type: string, data: Buffer): Buffer => {
    const typed = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(typed));
    return Buffer.concat([length, typed, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(1, 0); // width
  header.writeUInt32BE(1, 4); // height
  header.writeUInt8(8, 8); // bit depth
  header.writeUInt8(2, 9); // colour type: RGB
  const scanline = Buffer.from([0, 0xff, 0x00, 0x00]); // filter byte, then one red pixel
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(scanline)),
    chunk("IEND", Buffer.alloc(0)),
  ]).toString("base64");
}

/** 100 ms of silence, 8 kHz mono 16-bit PCM, as a RIFF/WAVE file. */
function silentWav(): string {
  const samples = 800;
  const data = Buffer.alloc(samples * 2);
  const header = Buffer.alloc(44);
  header.write("RIFF", 0, "latin1");
  header.writeUInt32LE(36 + data.length, 4);
  header.write("WAVE", 8, "latin1");
  header.write("fmt ", 12, "latin1");
  header.writeUInt32LE(16, 16); // fmt chunk size
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(8000, 24); // sample rate
  header.writeUInt32LE(16000, 28); // byte rate
  header.writeUInt16LE(2, 32); // block align
  header.writeUInt16LE(16, 34); // bits per sample
  header.write("data", 36, "latin1");
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]).toString("base64");
}

const png = redPixelPng();
const wav = silentWav();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const noArguments: Tool["inputSchema"] = { type: "object", properties: {} };

function text(value: string): CallToolResult {
  return { content: [{ type: "text", text: value }] };
}

function failure(value: string): CallToolResult {
  return { isError: true, content: [{ type: "text", text: value }] };
}

function stringArgument(args: Record<string, unknown> | undefined, name: string): string {
  const value = args?.[name];
  if (typeof value !== "string") {
    throw new McpError(ErrorCode.InvalidParams, `argument "${name}" must be a string`);
  }
  return value;
}

/** What one session's server knows while it runs a tool. */
interface Session {
  /** The protocol server beneath this session's McpServer. */
  server: McpServer["server"];
  /** The level the client set with logging/setLevel; undefined: everything is sent. */
  logLevel: LoggingLevel | undefined;
  /**
   * The URIs subscribed to (resources/subscribe, removed by unsubscribe). None
   * of this server's resources ever changes, so no update is ever due.
   */
  subscriptions: Set<string>;
}

interface ScenarioTool {
  definition: Tool;
  run: (
    args: Record<string, unknown> | undefined,
    extra: Extra,
    session: Session,
  ) => CallToolResult | Promise<CallToolResult>;
}

async function elicit(
  session: Session,
  extra: Extra,
  params: ElicitRequest["params"],
): Promise<CallToolResult | string> {
  if (session.server.getClientCapabilities()?.elicitation === undefined) {
    return failure("The client does not support elicitation.");
  }
  const answer = await extra.sendRequest(
    { method: "elicitation/create", params },
    ElicitResultSchema,
  );
  return `action=${answer.action}, content=${JSON.stringify(answer.content ?? {})}`;
}

const tools: ScenarioTool[] = [
  {
    definition: {
      name: "test_simple_text",
      description: "Answers one text item",
      inputSchema: noArguments,
    },
    run: () => text("This is a simple text response for testing."),
  },
  {
    definition: {
      name: "test_image_content",
      description: "Answers one image (a 1x1 red PNG)",
      inputSchema: noArguments,
    },
    run: () => ({ content: [{ type: "image", data: png, mimeType: "image/png" }] }),
  },
  {
    definition: {
      name: "test_audio_content",
      description: "Answers one audio clip (100 ms of silence, WAV)",
      inputSchema: noArguments,
    },
    run: () => ({ content: [{ type: "audio", data: wav, mimeType: "audio/wav" }] }),
  },
  {
    definition: {
      name: "test_embedded_resource",
      description: "Answers one embedded text resource",
      inputSchema: noArguments,
    },
    run: () => ({
      content: [
        {
          type: "resource",
          resource: {
            uri: "test://embedded-resource",
            mimeType: "text/plain",
            text: "This is an embedded resource content.",
          },
        },
      ],
    }),
  },
  {
    definition: {
      name: "test_multiple_content_types",
      description: "Answers text, an image and an embedded resource",
      inputSchema: noArguments,
    },
    run: () => ({
      content: [
        { type: "text", text: "Multiple content types test:" },
        { type: "image", data: png, mimeType: "image/png" },
        {
          type: "resource",
          resource: {
            uri: "test://mixed-content-resource",
            mimeType: "application/json",
            text: JSON.stringify({ test: "data", value: 123 }),
          },
        },
      ],
    }),
  },
  {
    definition: {
      name: "test_tool_with_logging",
      description: "Logs three info messages while it runs",
      inputSchema: noArguments,
    },
    run: async (_args, extra, session) => {
      const severity = LoggingLevelSchema.options;
      const log = async (message: string) => {
        const level: LoggingLevel = "info";
        const threshold = session.logLevel;
        if (threshold !== undefined && severity.indexOf(level) < severity.indexOf(threshold)) {
          return;
        }
        // On the tool call's own stream (related to its request), not the session's GET stream.
        await extra.sendNotification({
          method: "notifications/message",
          params: { level, logger: "test_tool_with_logging", data: message },
        });
      };
      await log("Tool execution started");
      await sleep(50);
      await log("Tool processing data");
      await sleep(50);
      await log("Tool execution completed");
      return text("Logging tool finished after three log messages.");
    },
  },
  {
    definition: {
      name: "test_error_handling",
      description: "Always fails (a tool error, isError: true)",
      inputSchema: noArguments,
    },
    run: () => failure("This tool intentionally returns an error for testing"),
  },
  {
    definition: {
      name: "test_tool_with_progress",
      description: "Reports progress 0, 50 and 100 of 100 when given a progress token",
      inputSchema: noArguments,
    },
    run: async (_args, extra) => {
      const progressToken = extra._meta?.progressToken;
      for (const progress of [0, 50, 100]) {
        if (progressToken !== undefined) {
          await extra.sendNotification({
            method: "notifications/progress",
            params: { progressToken, progress, total: 100 },
          });
        }
        if (progress < 100) await sleep(50);
      }
      return text("Progress tool finished.");
    },
  },
  {
    definition: {
      name: "test_sampling",
      description: "Asks the client's LLM (sampling/createMessage) to answer a prompt",
      inputSchema: {
        type: "object",
        properties: { prompt: { type: "string", description: "The prompt for the LLM" } },
        required: ["prompt"],
      },
    },
    run: async (args, extra, session) => {
      const prompt = stringArgument(args, "prompt");
      if (session.server.getClientCapabilities()?.sampling === undefined) {
        return failure("The client does not support sampling.");
      }
      const answer = await extra.sendRequest(
        {
          method: "sampling/createMessage",
          params: {
            messages: [{ role: "user", content: { type: "text", text: prompt } }],
            maxTokens: 100,
          },
        },
        CreateMessageResultSchema,
      );
      const content = answer.content;
      const reply =
        !Array.isArray(content) && content.type === "text" ? content.text : JSON.stringify(content);
      return text(`LLM response: ${reply}`);
    },
  },
  {
    definition: {
      name: "test_elicitation",
      description: "Asks the user (elicitation/create) for a username and an email address",
      inputSchema: {
        type: "object",
        properties: { message: { type: "string", description: "What the user is asked" } },
        required: ["message"],
      },
    },
    run: async (args, extra, session) => {
      const answer = await elicit(session, extra, {
        message: stringArgument(args, "message"),
        requestedSchema: {
          type: "object",
          properties: {
            username: { type: "string", description: "User's response" },
            email: { type: "string", description: "User's email address" },
          },
          required: ["username", "email"],
        },
      });
      return typeof answer === "string" ? text(`User response: ${answer}`) : answer;
    },
  },
  {
    definition: {
      name: "test_elicitation_sep1034_defaults",
      description: "Elicits one field of each primitive type, each with a default (SEP-1034)",
      inputSchema: noArguments,
    },
    run: async (_args, extra, session) => {
      const answer = await elicit(session, extra, {
        message: "Confirm or change these details",
        requestedSchema: {
          type: "object",
          properties: {
            name: { type: "string", default: "John Doe" },
            age: { type: "integer", default: 30 },
            score: { type: "number", default: 95.5 },
            status: { type: "string", enum: ["active", "inactive", "pending"], default: "active" },
            verified: { type: "boolean", default: true },
          },
        },
      });
      return typeof answer === "string" ? text(`Elicitation completed: ${answer}`) : answer;
    },
  },
  {
    definition: {
      name: "test_elicitation_sep1330_enums",
      description: "Elicits the five enum forms of SEP-1330",
      inputSchema: noArguments,
    },
    run: async (_args, extra, session) => {
      const answer = await elicit(session, extra, {
        message: "Pick your options",
        requestedSchema: {
          type: "object",
          properties: {
            untitledSingle: { type: "string", enum: ["option1", "option2", "option3"] },
            titledSingle: {
              type: "string",
              oneOf: [
                { const: "value1", title: "First Option" },
                { const: "value2", title: "Second Option" },
                { const: "value3", title: "Third Option" },
              ],
            },
            legacyEnum: {
              type: "string",
              enum: ["opt1", "opt2", "opt3"],
              enumNames: ["Option One", "Option Two", "Option Three"],
            },
            untitledMulti: {
              type: "array",
              items: { type: "string", enum: ["option1", "option2", "option3"] },
            },
            titledMulti: {
              type: "array",
              items: {
                anyOf: [
                  { const: "value1", title: "First Choice" },
                  { const: "value2", title: "Second Choice" },
                  { const: "value3", title: "Third Choice" },
                ],
              },
            },
          },
        },
      });
      return typeof answer === "string" ? text(`Elicitation completed: ${answer}`) : answer;
    },
  },
  {
    definition: {
      name: "json_schema_2020_12_tool",
      description: "Tool with JSON Schema 2020-12 features",
      inputSchema: {
        $schema: "https://json-schema.org/draft/2020-12/schema",
        type: "object",
        $defs: {
          address: {
            type: "object",
            properties: { street: { type: "string" }, city: { type: "string" } },
          },
        },
        properties: { name: { type: "string" }, address: { $ref: "#/$defs/address" } },
        additionalProperties: false,
      },
    },
    run: (args) => text(`Received ${JSON.stringify(args ?? {})}`),
  },
  {
    definition: {
      name: "test_reconnection",
      description:
        "Closes its SSE stream mid-call (when the client can resume) and answers after it reconnects",
      inputSchema: noArguments,
    },
    run: async (_args, extra) => {
      // The SDK offers closeSSEStream only to clients that can resume (2025-11-25 and later,
      // with the event store): the answer is then stored and replayed after Last-Event-ID.
      if (extra.closeSSEStream !== undefined) {
        extra.closeSSEStream();
        await sleep(100);
      }
      return text("Reconnection tool finished.");
    },
  },
];

const toolsByName = new Map(tools.map((tool) => [tool.definition.name, tool]));

const staticResources = [
  {
    uri: "test://static-text",
    name: "static-text",
    description: "A static text resource",
    mimeType: "text/plain",
    read: () => ({ text: "This is the content of the static text resource." }),
  },
  {
    uri: "test://static-binary",
    name: "static-binary",
    description: "A static binary resource (a PNG)",
    mimeType: "image/png",
    read: () => ({ blob: png }),
  },
  {
    uri: "test://watched-resource",
    name: "watched-resource",
    description: "A resource clients may subscribe to",
    mimeType: "text/plain",
    read: () => ({ text: "This resource may change; subscribe to hear of it." }),
  },
];

const templatePattern = /^test:\/\/template\/([^/]+)\/data$/;

const prompts = [
  { name: "test_simple_prompt", description: "A prompt without arguments" },
  {
    name: "test_prompt_with_arguments",
    description: "A prompt with two arguments",
    arguments: [
      { name: "arg1", description: "First test argument", required: true },
      { name: "arg2", description: "Second test argument", required: true },
    ],
  },
  {
    name: "test_prompt_with_embedded_resource",
    description: "A prompt embedding a resource",
    arguments: [{ name: "resourceUri", description: "URI of the resource", required: true }],
  },
  { name: "test_prompt_with_image", description: "A prompt with an image" },
];

function promptArgument(args: Record<string, string> | undefined, name: string): string {
  const value = args?.[name];
  if (value === undefined) {
    throw new McpError(ErrorCode.InvalidParams, `missing required argument "${name}"`);
  }
  return value;
}

function getPrompt(name: string, args: Record<string, string> | undefined): GetPromptResult {
  switch (name) {
    case "test_simple_prompt":
      return {
        messages: [
          { role: "user", content: { type: "text", text: "This is a simple prompt for testing." } },
        ],
      };
    case "test_prompt_with_arguments": {
      const [arg1, arg2] = [promptArgument(args, "arg1"), promptArgument(args, "arg2")];
      return {
        messages: [
          {
            role: "user",
            content: {
              type: "text",
              text: `Prompt with arguments: arg1='${arg1}', arg2='${arg2}'`,
            },
          },
        ],
      };
    }
    case "test_prompt_with_embedded_resource":
      return {
        messages: [
          {
            role: "user",
            content: {
              type: "resource",
              resource: {
                uri: promptArgument(args, "resourceUri"),
                mimeType: "text/plain",
                text: "Embedded resource content for testing.",
              },
            },
          },
          {
            role: "user",
            content: { type: "text", text: "Please process the embedded resource above." },
          },
        ],
      };
    case "test_prompt_with_image":
      return {
        messages: [
          { role: "user", content: { type: "image", data: png, mimeType: "image/png" } },
          { role: "user", content: { type: "text", text: "Please analyze the image above." } },
        ],
      };
    default:
      throw new McpError(ErrorCode.InvalidParams, `unknown prompt ${name}`);
  }
}

/** Values completion/complete offers for a prompt argument, by argument name. */
const completions: Record<string, string[]> = {
  arg1: ["paris", "park", "party", "test", "testing"],
  arg2: ["world", "word", "work"],
};

function buildSession(): { mcp: McpServer; session: Session } {
  const mcp = new McpServer(
    { name: "mcp-pdp-conformance", version: "1.0.0" },
    {
      capabilities: {
        tools: {},
        resources: { subscribe: true },
        prompts: {},
        logging: {},
        completions: {},
      },
    },
  );
  // Nothing is registered through McpServer's own API, so none of its handlers compete.
  const server = mcp.server;
  const session: Session = { server, logLevel: undefined, subscriptions: new Set() };
  // This session's own level (one Server per session), read by the logging tool.
  server.setRequestHandler(SetLevelRequestSchema, (request) => {
    session.logLevel = request.params.level;
    return {};
  });
  server.setRequestHandler(ListToolsRequestSchema, () => ({
    tools: tools.map((tool) => tool.definition),
  }));
  server.setRequestHandler(CallToolRequestSchema, (request, extra) => {
    const tool = toolsByName.get(request.params.name);
    if (tool === undefined) {
      throw new McpError(ErrorCode.InvalidParams, `unknown tool ${request.params.name}`);
    }
    return tool.run(request.params.arguments, extra, session);
  });
  server.setRequestHandler(ListResourcesRequestSchema, () => ({
    resources: staticResources.map(({ uri, name, description, mimeType }) => ({
      uri,
      name,
      description,
      mimeType,
    })),
  }));
  server.setRequestHandler(ListResourceTemplatesRequestSchema, () => ({
    resourceTemplates: [
      {
        uriTemplate: "test://template/{id}/data",
        name: "template-data",
        description: "Data for one id",
        mimeType: "application/json",
      },
    ],
  }));
  server.setRequestHandler(ReadResourceRequestSchema, (request) => {
    const uri = request.params.uri;
    const resource = staticResources.find((candidate) => candidate.uri === uri);
    if (resource !== undefined) {
      return { contents: [{ uri, mimeType: resource.mimeType, ...resource.read() }] };
    }
    const id = templatePattern.exec(uri)?.[1];
    if (id !== undefined) {
      const data = { id, templateTest: true, data: `Data for ID: ${id}` };
      return { contents: [{ uri, mimeType: "application/json", text: JSON.stringify(data) }] };
    }
    // -32002: the spec's "resource not found".
    throw new McpError(-32002, `resource not found: ${uri}`);
  });
  server.setRequestHandler(SubscribeRequestSchema, (request) => {
    session.subscriptions.add(request.params.uri);
    return {};
  });
  server.setRequestHandler(UnsubscribeRequestSchema, (request) => {
    session.subscriptions.delete(request.params.uri);
    return {};
  });
  server.setRequestHandler(ListPromptsRequestSchema, () => ({ prompts }));
  server.setRequestHandler(GetPromptRequestSchema, (request) =>
    getPrompt(request.params.name, request.params.arguments),
  );
  server.setRequestHandler(CompleteRequestSchema, (request) => {
    const { ref, argument } = request.params;
    const known =
      ref.type === "ref/prompt" && ref.name === "test_prompt_with_arguments"
        ? (completions[argument.name] ?? [])
        : [];
    const values = known.filter((value) => value.startsWith(argument.value));
    return { completion: { values, total: values.length, hasMore: false } };
  });
  return { mcp, session };
}

/**
 * Every message of every stream, kept for the life of the server so that a
 * client reconnecting with Last-Event-ID gets what it missed on that stream.
 */
export class MemoryEventStore implements EventStore {
  private readonly events: { id: string; streamId: string; message: JSONRPCMessage }[] = [];

  storeEvent(streamId: string, message: JSONRPCMessage): Promise<string> {
    const id = `${streamId}.${this.events.length}`;
    this.events.push({ id, streamId, message });
    return Promise.resolve(id);
  }

  getStreamIdForEventId(eventId: string): Promise<string | undefined> {
    return Promise.resolve(this.events.find((event) => event.id === eventId)?.streamId);
  }

  async replayEventsAfter(
    lastEventId: string,
    { send }: { send: (eventId: string, message: JSONRPCMessage) => Promise<void> },
  ): Promise<string> {
    const index = this.events.findIndex((event) => event.id === lastEventId);
    const last = this.events[index];
    if (last === undefined) throw new Error(`unknown event id ${lastEventId}`);
    for (const event of this.events.slice(index + 1)) {
      // Priming events carry no message ({}): nothing to replay for them.
      if (event.streamId === last.streamId && Object.keys(event.message).length > 0) {
        await send(event.id, event.message);
      }
    }
    return last.streamId;
  }
}

/** How long a client waits before reconnecting to a stream the server closed (SSE `retry`). */
const retryIntervalMs = 200;

export interface ScenarioServerOptions {
  /**
   * The PEP in front of every MCP request, made once the server's origin is
   * known (its resource metadata URL needs it); none: the server as is.
   */
  pep?: ((origin: string) => McpAuthorizationMiddleware) | undefined;
}

export interface RunningScenarioServer {
  /** e.g. http://127.0.0.1:40123 */
  origin: string;
  /** The MCP endpoint: `${origin}/mcp`. */
  url: string;
  /** Sessions opened by `initialize` so far. */
  sessionsOpened: () => number;
  /** Sessions the client ended (DELETE) so far. */
  sessionsEnded: () => number;
  /** GET requests that resumed a stream (`Last-Event-ID`) and reached the transport. */
  resumptions: () => number;
  close: () => Promise<void>;
}

function jsonRpcError(res: Response, status: number, code: number, message: string): void {
  res.status(status).json({ jsonrpc: "2.0", id: null, error: { code, message } });
}

/** Starts the scenario server on 127.0.0.1 (a free port). */
export async function startScenarioServer(
  options: ScenarioServerOptions = {},
): Promise<RunningScenarioServer> {
  const transports = new Map<string, StreamableHTTPServerTransport>();
  const eventStore = new MemoryEventStore();
  let opened = 0;
  let ended = 0;
  let resumed = 0;

  const mcp: RequestHandler = async (req: Request, res: Response) => {
    const sessionHeader = req.headers["mcp-session-id"];
    const sessionId = typeof sessionHeader === "string" ? sessionHeader : undefined;
    let transport = sessionId === undefined ? undefined : transports.get(sessionId);
    if (sessionId !== undefined && transport === undefined) {
      // The transport spec: an unknown (or ended) session is a 404, the client starts over.
      jsonRpcError(res, 404, -32001, "Session not found");
      return;
    }
    if (transport === undefined) {
      if (req.method !== "POST" || !isInitializeRequest(req.body)) {
        jsonRpcError(res, 400, ErrorCode.InvalidRequest, "Bad Request: no valid session ID");
        return;
      }
      const created = new StreamableHTTPServerTransport({
        sessionIdGenerator: randomUUID,
        eventStore,
        retryInterval: retryIntervalMs,
        onsessioninitialized: (id) => {
          opened += 1;
          transports.set(id, created);
        },
        onsessionclosed: (id) => {
          ended += 1;
          transports.delete(id);
        },
      });
      created.onclose = () => {
        if (created.sessionId !== undefined) transports.delete(created.sessionId);
      };
      await buildSession().mcp.connect(created);
      transport = created;
    }
    if (req.method === "GET" && typeof req.headers["last-event-id"] === "string") resumed += 1;
    await transport.handleRequest(req, res, req.body);
  };

  // Host validation (127.0.0.1, localhost, [::1]) and express.json(), in that order.
  const app = createMcpExpressApp({ host: "127.0.0.1" });
  const server: HttpServer = createServer(app);
  await new Promise<void>((resolve) => {
    server.listen(0, "127.0.0.1", resolve);
  });
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  // Mounted before anything can have connected: the port was only just known.
  if (options.pep === undefined) app.all("/mcp", mcp);
  else app.all("/mcp", options.pep(origin), mcp);
  return {
    origin,
    url: `${origin}/mcp`,
    sessionsOpened: () => opened,
    sessionsEnded: () => ended,
    resumptions: () => resumed,
    close: async () => {
      for (const transport of transports.values()) await transport.close();
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => {
        server.close((error) => {
          if (error) reject(error);
          else resolve();
        });
      });
    },
  };
}
