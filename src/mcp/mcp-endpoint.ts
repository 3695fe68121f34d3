// The Model Context Protocol at /mcp: an AI assistant lists the tools and calls them; each call is
// one GraphQL operation run through Apollo Server's request pipeline with the caller's own
// `Authorization`, as over /graphql, so the limits, sharing, traces, plugins, the audit trail and
// the team-access policies all apply. The official SDK's Server answers the protocol over its
// Streamable HTTP transport, stateless (a server and transport per HTTP request, JSON answers):
// any instance of a fleet answers any request, and nothing is held between them.
import { readFileSync } from 'node:fs';
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import {
  CallToolRequestSchema,
  ErrorCode as McpErrorCode,
  ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema,
  ListToolsRequestSchema,
  ReadResourceRequestSchema,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import type { ApolloServer, GraphQLRequest } from '@apollo/server';
import {
  type FormattedExecutionResult,
  type GraphQLFormattedError,
  type GraphQLSchema,
  type ParseOptions,
  type ValidationRule,
} from 'graphql';
import type { Logger } from 'pino';
import * as z from 'zod/v4';
import type { McpSettings } from '../config.js';
import type { GatewayContext } from '../context.js';
import { ErrorCode } from '../errors.js';
import { auditCaller } from '../graphql/plugins/audit-trail.js';
import type { TrustedDocumentList, TrustedDocuments } from '../graphql/trusted-document-list.js';
import { freeFormTools, type FreeFormTool } from './free-form-tools.js';
import { operationTool, snakeCase, type OperationTool } from './tool-operations.js';
import { answer, codesOf, refusal, shown, toolError, type ToolOutcome } from './tool-results.js';
import { JOB_RESOURCE_QUERY, JOB_URI, RECENT_JOBS_QUERY, jobIdOfUri } from './job-resource.js';

export const MCP_PATH = '/mcp';

/** `tools/call` with any `params`: the SDK's Server checks them itself, answering InvalidParams. */
const LOOSE_CALL_TOOL_REQUEST = CallToolRequestSchema.extend({ params: z.unknown().optional() });

/** The gateway's version, as the server tells MCP clients (package.json, beside `src/` and `dist/`). */
const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

/** Who is asking, from the HTTP request that carries the MCP message. */
export interface McpCaller {
  authorization: string | undefined;
  host: string | undefined;
  requestId: string;
  logger: Logger;
}

export interface McpEndpointOptions {
  apollo: ApolloServer<GatewayContext>;
  schema: GraphQLSchema;
  settings: McpSettings;
  /** The tools of mcp.operations, loaded and checked at start. */
  operationTools: readonly OperationTool[];
  /**
   * security.trustedDocuments, and whether only its operations run: with mcp.trustedDocumentTools
   * its operations are tools too.
   */
  trustedDocuments: { documents: TrustedDocuments; only: boolean } | undefined;
  /** What the pipeline refuses before parsing and validating (limits.maxBytes, tokens, armor's rules). */
  limits: { maxBytes: number; parseOptions: ParseOptions; validationRules: readonly ValidationRule[] };
  /** The context of one operation, as over /graphql (transport `mcp`). */
  createContext(caller: McpCaller): Promise<GatewayContext>;
}

const INSTRUCTIONS = `Archetype AI fine-tune jobs, through the fine-tune gateway. Find jobs with list_jobs (filter by status), look at one with get_job, and ask how its training goes with job_metrics_summary (latest and best loss, whether it is still improving). Mutation tools (create_job, stop_job, cancel_job) are listed only where the operator enabled them. Errors carry a GraphQL code: NOT_FOUND, CONFLICT (the job's status does not allow it), BAD_USER_INPUT, UNAUTHENTICATED, FORBIDDEN, QUERY_LIMIT_EXCEEDED, RATE_LIMITED. A job is also a resource: ${JOB_URI}.`;

export class McpEndpoint {
  private readonly tools = new Map<string, OperationTool>();
  private readonly freeForm = new Map<string, FreeFormTool>();
  /** The tools offered with each version of the trusted documents list (a reload makes a new one). */
  private readonly toolsOfList = new WeakMap<TrustedDocumentList, OperationTool[]>();

  constructor(private readonly options: McpEndpointOptions) {
    for (const tool of options.operationTools) {
      if (tool.kind === 'query' || options.settings.mutations) this.tools.set(tool.name, tool);
    }
    if (options.settings.freeFormTools) {
      const tools = freeFormTools({ ...options, mutations: options.settings.mutations });
      for (const tool of tools) this.freeForm.set(tool.name, tool);
    }
  }

  /** One HTTP request to /mcp: a JSON-RPC message (or a batch) in, its answer out. */
  async handle(request: Request, body: unknown, caller: McpCaller): Promise<Response> {
    const server = this.server(caller);
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: true,
    });
    await server.connect(transport);
    try {
      return await transport.handleRequest(request, { parsedBody: body });
    } finally {
      // The answer is complete (JSON, not a stream): nothing outlives the request.
      await server.close();
    }
  }

  /**
   * The operation tools offered now: the files', then the trusted documents' of the list in use.
   * With only listed documents allowed (security.trustedDocuments.only), a file's tool whose text
   * is not listed would always be refused: it is not offered.
   */
  private operationTools(): OperationTool[] {
    const trusted = this.options.trustedDocuments;
    const list = trusted?.documents.current;
    if (list === undefined) return [...this.tools.values()];
    let offered = this.toolsOfList.get(list);
    if (offered === undefined) {
      offered = [...this.tools.values()].filter((tool) => !trusted!.only || list.byText(tool.query));
      if (this.options.settings.trustedDocumentTools) offered.push(...this.listedTools(list));
      this.toolsOfList.set(list, offered);
    }
    return offered;
  }

  /** The named queries (and, with mcp.mutations, mutations) of a trusted documents list, as tools. */
  private listedTools(list: TrustedDocumentList): OperationTool[] {
    const listed: OperationTool[] = [];
    for (const document of list.documents()) {
      const parsed = operationTool(this.options.schema, '', document.body, `trusted document ${document.id}`);
      // A document that is no tool (a subscription) is left out; a tool is named after its
      // operation, so an anonymous one is left out too, and a file's tool keeps its name.
      if ('error' in parsed || parsed.operationName === undefined) continue;
      const tool = { ...parsed, name: snakeCase(parsed.operationName) };
      if (this.tools.has(tool.name) || this.freeForm.has(tool.name)) continue;
      if (listed.some((other) => other.name === tool.name)) continue;
      if (tool.kind === 'mutation' && !this.options.settings.mutations) continue;
      listed.push(tool);
    }
    return listed;
  }

  private server(caller: McpCaller): Server {
    const server = new Server(
      { name: 'fine-tune-gateway', title: 'Archetype AI fine-tune jobs', version: VERSION },
      { capabilities: { tools: {}, resources: {} }, instructions: INSTRUCTIONS },
    );
    server.setRequestHandler(ListToolsRequestSchema, async () => ({
      tools: [...this.operationTools(), ...this.freeForm.values()].map((tool): Tool => ({
        name: tool.name,
        description: tool.description,
        inputSchema: tool.inputSchema,
        annotations: tool.annotations,
      })),
    }));
    // Parsed loosely, then by the SDK's own check for tools/call: a malformed call (no `params`,
    // `arguments` that are no object) is the protocol's InvalidParams (-32602), not an internal error.
    server.setRequestHandler(LOOSE_CALL_TOOL_REQUEST, async (request) => {
      const { params } = CallToolRequestSchema.parse(request);
      return this.callTool(params.name, params.arguments, caller);
    });
    server.setRequestHandler(ListResourceTemplatesRequestSchema, async () => ({
      resourceTemplates: [
        {
          uriTemplate: JOB_URI,
          name: 'fine-tune-job',
          title: 'Fine-tune job',
          description: "A fine-tune job's record and the summary of its training metrics, as JSON.",
          mimeType: 'application/json',
        },
      ],
    }));
    server.setRequestHandler(ListResourcesRequestSchema, async () => this.listJobResources(caller));
    server.setRequestHandler(ReadResourceRequestSchema, async (request) =>
      this.readJobResource(request.params.uri, caller),
    );
    return server;
  }

  private async callTool(name: string, args: Record<string, unknown> | undefined, caller: McpCaller) {
    const started = performance.now();
    const tool = this.operationTools().find((candidate) => candidate.name === name);
    const freeForm = this.freeForm.get(name);
    if (tool === undefined && freeForm === undefined) {
      caller.logger.info({ tool: shown(name), outcome: 'unknown tool' }, 'mcp tool call');
      // A mutation tool where mutations are off is unknown too: it was never offered.
      throw protocolError(McpErrorCode.InvalidParams, `Unknown tool: ${shown(name)}`);
    }
    let outcome: ToolOutcome;
    const properties = (tool ?? freeForm)!.inputSchema.properties;
    // Own keys only: `constructor` or `toString` is no argument of any tool.
    const unknown = Object.keys(args ?? {}).filter((key) => !Object.hasOwn(properties, key));
    if (unknown.length > 0) {
      const known = Object.keys(properties);
      // The first few, each cut: the keys are the caller's, any number of any length.
      const named = unknown.slice(0, 5).map((key) => `\`${shown(key)}\``);
      if (unknown.length > 5) named.push('…');
      outcome = {
        result: refusal(
          ErrorCode.BAD_USER_INPUT,
          `Unknown argument${unknown.length > 1 ? 's' : ''} ${named.join(', ')} for ${name}; it takes ${known.length ? known.map((key) => `\`${key}\``).join(', ') : 'none'}.`,
          { argument: shown(unknown[0]!) },
        ),
      };
    } else if (tool !== undefined) {
      outcome = await this.runTool(tool, args ?? {}, caller);
    } else {
      outcome = await freeForm!.call(args ?? {}, (request) => this.execute(request, caller));
    }
    const codes = codesOf(outcome.result);
    // A call refused before any operation (an unknown argument, a mutation with mutations off,
    // validate_operation) is logged with its caller too: the audit asks who tried.
    const context = outcome.context ?? (await this.options.createContext(caller));
    caller.logger.info(
      {
        tool: name,
        ...auditCaller(context),
        outcome: codes ? 'error' : 'ok',
        ...(codes && { errorCodes: codes }),
        durationMs: Math.round(performance.now() - started),
      },
      'mcp tool call',
    );
    return outcome.result;
  }

  /** One operation through Apollo Server's pipeline, with the caller's credentials. */
  private async execute(request: GraphQLRequest, caller: McpCaller) {
    const context = await this.options.createContext(caller);
    const response = await this.options.apollo.executeOperation(request, { contextValue: context });
    // Only `@defer`/`@stream` answer incrementally, and the schema offers neither.
    const result: FormattedExecutionResult =
      response.body.kind === 'single' ? response.body.singleResult : response.body.initialResult;
    return { result, context };
  }

  private async runTool(tool: OperationTool, variables: Record<string, unknown>, caller: McpCaller) {
    const { result, context } = await this.execute(
      { query: tool.query, variables, ...(tool.operationName && { operationName: tool.operationName }) },
      caller,
    );
    if (result.errors?.length) return { result: toolError(result.errors, result.data), context };
    const data = result.data ?? {};
    // GraphQL answers an unknown id with null; an assistant asked for that one thing.
    const missing = Object.entries(data).filter(([, value]) => value === null);
    if (missing.length > 0 && missing.length === Object.keys(data).length) {
      const [field] = missing[0]!;
      return {
        result: refusal(
          ErrorCode.NOT_FOUND,
          `\`${field}\` found nothing for ${shown(JSON.stringify(variables))}.`,
        ),
        context,
      };
    }
    return { result: answer(data), context };
  }

  private async listJobResources(caller: McpCaller) {
    const { result } = await this.execute({ query: RECENT_JOBS_QUERY }, caller);
    if (result.errors?.length) throw resourceError(result.errors[0]!);
    const jobs = (result.data as { fineTuneJobs: { id: string; name: string; status: string }[] })
      .fineTuneJobs;
    return {
      resources: jobs.map((job) => ({
        uri: JOB_URI.replace('{id}', encodeURIComponent(job.id)),
        name: job.id,
        title: `${job.name} (${job.status})`,
        mimeType: 'application/json',
      })),
    };
  }

  private async readJobResource(uri: string, caller: McpCaller) {
    const id = jobIdOfUri(uri);
    if (id === undefined) {
      throw protocolError(
        McpErrorCode.InvalidParams,
        `Not a fine-tune job resource: ${shown(uri)} (expected ${JOB_URI}).`,
      );
    }
    const started = performance.now();
    const { result, context } = await this.execute({ query: JOB_RESOURCE_QUERY, variables: { id } }, caller);
    const error = result.errors?.[0];
    const job = result.data?.fineTuneJob;
    const code = error ? String(error.extensions?.code) : job ? undefined : ErrorCode.NOT_FOUND;
    caller.logger.info(
      {
        resource: JOB_URI,
        jobId: shown(id),
        ...auditCaller(context),
        outcome: code ? 'error' : 'ok',
        ...(code && { errorCodes: [code] }),
        durationMs: Math.round(performance.now() - started),
      },
      'mcp resource read',
    );
    if (error) throw resourceError(error);
    // MCP's own code for a resource that is not there.
    if (!job)
      throw protocolError(-32002, `Resource not found: no fine-tune job ${JSON.stringify(shown(id))}.`, {
        uri: shown(uri),
      });
    return { contents: [{ uri, mimeType: 'application/json', text: JSON.stringify(job, null, 2) }] };
  }
}

/** A resource read that failed in GraphQL: a protocol error carrying the code and message. */
function resourceError(error: GraphQLFormattedError): Error {
  const code = String(error.extensions?.code ?? ErrorCode.INTERNAL_SERVER_ERROR);
  return protocolError(McpErrorCode.InvalidRequest, `${code}: ${error.message}`, { code });
}

/**
 * A JSON-RPC error answer. The SDK answers a handler's thrown error with its `code`, `message`
 * and `data`; its McpError would repeat "MCP error <code>:" in the message, which clients add again.
 */
function protocolError(code: number, message: string, data?: Record<string, unknown>): Error {
  return Object.assign(new Error(message), { code, ...(data && { data }) });
}
