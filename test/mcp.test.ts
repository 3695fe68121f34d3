// The MCP endpoint over the wire: the SDK's own Client over Streamable HTTP at /mcp, against the
// gateway and the simulator's demo data. Each tool call is one operation through Apollo Server's
// pipeline with the caller's credentials: the same answer as the same GraphQL query, the same
// refusals (limits, credentials, scopes), seen once by every plugin, one log line each.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApolloServerPlugin } from '@apollo/server';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { GatewayContext } from '../src/context.js';
import { ACME_KEY, GLOBEX_KEY, startStack, type Stack, type StackOptions } from './harness.js';
import { startIdentityProvider } from './identity-provider.js';
import { jobRecord } from './jobs.js';

const TOOLS = new URL('../mcp-tools/', import.meta.url);
const READ_TOOLS = ['get_job', 'job_metrics_summary', 'list_jobs'];
const MUTATION_TOOLS = ['cancel_job', 'create_job', 'stop_job'];
const FREE_FORM_TOOLS = ['describe_schema', 'execute_operation', 'validate_operation'];

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** The operation a shipped tool runs, as its file has it. */
function operationOf(tool: string): string {
  return readFileSync(new URL(`${tool}.graphql`, TOOLS), 'utf8');
}

const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
});

/** An MCP client connected to the gateway's /mcp, with `Authorization: Bearer <apiKey>` (none: null). */
async function connectMcp(stack: Stack, apiKey: string | null = ACME_KEY): Promise<Client> {
  const client = new Client({ name: 'mcp-test', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL('/mcp', stack.gateway.url), {
    ...(apiKey !== null && { requestInit: { headers: { Authorization: `Bearer ${apiKey}` } } }),
  });
  await client.connect(transport);
  clients.push(client);
  return client;
}

async function call(client: Client, name: string, args: Record<string, unknown> = {}) {
  return (await client.callTool({ name, arguments: args })) as CallToolResult;
}

/** A tool error's GraphQL code and message; fails the test for a success. */
function toolError(result: CallToolResult) {
  expect(result.isError, JSON.stringify(result)).toBe(true);
  const { errors } = result.structuredContent as {
    errors: { message: string; extensions: Record<string, unknown> }[];
  };
  const text = (result.content[0] as { text: string }).text;
  expect(text).toContain(`${String(errors[0]!.extensions.code)}: ${errors[0]!.message}`);
  return { code: errors[0]!.extensions.code, message: errors[0]!.message, extensions: errors[0]!.extensions };
}

/** A tool's structured answer, also given as JSON text; fails the test for a tool error. */
function toolData(result: CallToolResult): Record<string, unknown> {
  expect(result.isError ?? false, JSON.stringify(result)).toBe(false);
  expect(JSON.parse((result.content[0] as { text: string }).text)).toEqual(result.structuredContent);
  return result.structuredContent!;
}

/** Every `mcp tool call` log line since `from`. */
function toolLines(stack: Stack, from = 0): Record<string, unknown>[] {
  return stack.logLines
    .slice(from)
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((line) => line.msg === 'mcp tool call');
}

function acmeJob(stack: Stack, overrides: Parameters<typeof jobRecord>[1] = {}): string {
  const acme = stack.simulator.store.organizations[0]!;
  const record = jobRecord(acme, overrides);
  stack.simulator.store.put(acme, record);
  return record.id;
}

describe('at the defaults (outside production)', () => {
  let stack: Stack;
  /** Each operation's start in the pipeline, as an operator's plugin sees it. */
  const started: (string | null)[] = [];
  const counting: ApolloServerPlugin<GatewayContext> = {
    async requestDidStart({ request }) {
      started.push(request.operationName ?? null);
    },
  };
  beforeAll(async () => {
    stack = await startStack({ plugins: [counting] });
  });
  afterAll(() => stack.stop());
  beforeEach(() => {
    stack.simulator.resetRequests();
    started.length = 0;
  });

  it('lists the read tools and the free-form ones, no mutation tool, with input schemas from the SDL', async () => {
    const client = await connectMcp(stack);
    expect(client.getServerVersion()?.name).toBe('fine-tune-gateway');
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual([...READ_TOOLS, ...FREE_FORM_TOOLS].sort());
    const byName = new Map(tools.map((tool) => [tool.name, tool]));

    const list = byName.get('list_jobs')!;
    // The description is the file's leading comment; the hints say it only reads.
    expect(list.description).toMatch(/^Lists the organization's fine-tune jobs/);
    expect(list.annotations).toMatchObject({ readOnlyHint: true });
    expect(list.inputSchema.required).toBeUndefined();
    const { statuses, limit, offset } = list.inputSchema.properties as Record<
      string,
      Record<string, unknown>
    >;
    expect(statuses).toMatchObject({
      type: 'array',
      items: {
        type: 'string',
        enum: [
          'UNKNOWN',
          'REGISTERED',
          'STARTING',
          'RUNNING',
          'COMPLETED',
          'FINALIZING',
          'STOPPING',
          'STOPPED',
          'CANCELLED',
          'FAILED',
        ],
      },
    });
    // The argument's description from the SDL, and each enum value's.
    expect(statuses!.description).toMatch(/^Only jobs in one of these statuses/);
    expect((statuses!.items as { description: string }).description).toContain(
      'RUNNING: Training is in progress; metrics grow with each checkpoint.',
    );
    expect(limit).toMatchObject({
      type: 'integer',
      default: 20,
      description: expect.stringMatching(/^The most jobs to return/),
    });
    expect(offset).toMatchObject({ type: 'integer', default: 0 });

    const get = byName.get('get_job')!;
    expect(get.inputSchema).toMatchObject({
      type: 'object',
      required: ['id'],
      properties: { id: { type: 'string', description: "The job's id, 1 to 64 characters." } },
      additionalProperties: false,
    });
    expect(byName.get('job_metrics_summary')!.description).toMatch(/still improving/);
    expect(byName.get('execute_operation')!.annotations).toMatchObject({ readOnlyHint: true });
  });

  it('answers each read tool as the same GraphQL query does, one operation and one log line each', async () => {
    const client = await connectMcp(stack);
    const running = acmeJob(stack, { status: 'RUNNING' });
    const linesBefore = stack.logLines.length;
    const calls: [string, Record<string, unknown>][] = [
      ['list_jobs', {}],
      ['list_jobs', { statuses: ['RUNNING'], limit: 2, offset: 0 }],
      ['get_job', { id: running }],
      ['job_metrics_summary', { id: running }],
    ];
    for (const [tool, args] of calls) {
      const data = toolData(await call(client, tool, args));
      const graphql = await stack.query(operationOf(tool), args);
      expect(graphql.errors).toBeUndefined();
      expect(data).toEqual(graphql.data);
    }
    expect((toolData(await call(client, 'list_jobs', { limit: 3 })).fineTuneJobs as unknown[]).length).toBe(
      3,
    );
    // Each tool call (and each GraphQL query) was one operation through the pipeline.
    expect(started).toEqual([
      'ListJobs',
      'ListJobs',
      'ListJobs',
      'ListJobs',
      'GetJob',
      'GetJob',
      'JobMetricsSummary',
      'JobMetricsSummary',
      'ListJobs',
    ]);
    const lines = toolLines(stack, linesBefore);
    expect(lines.map((line) => line.tool)).toEqual([
      'list_jobs',
      'list_jobs',
      'get_job',
      'job_metrics_summary',
      'list_jobs',
    ]);
    for (const line of lines) {
      expect(line).toMatchObject({
        outcome: 'ok',
        credential: expect.any(String),
        requestId: expect.any(String),
      });
    }
    expect(stack.logLines.join('\n')).not.toContain(ACME_KEY);
  });

  it("acts for the caller's organization only", async () => {
    const globex = stack.simulator.store.organizations[1]!;
    const record = jobRecord(globex, { status: 'RUNNING' });
    stack.simulator.store.put(globex, record);
    expect(
      toolData(await call(await connectMcp(stack, GLOBEX_KEY), 'get_job', { id: record.id })),
    ).toMatchObject({
      fineTuneJob: { id: record.id },
    });
    expect(toolError(await call(await connectMcp(stack, ACME_KEY), 'get_job', { id: record.id })).code).toBe(
      'NOT_FOUND',
    );
  });

  it('answers an unknown job with a NOT_FOUND tool error', async () => {
    const client = await connectMcp(stack);
    for (const tool of ['get_job', 'job_metrics_summary']) {
      const error = toolError(await call(client, tool, { id: 'ftj-no-such-job' }));
      expect(error.code).toBe('NOT_FOUND');
      expect(error.message).toContain('ftj-no-such-job');
    }
    expect(toolLines(stack).at(-1)).toMatchObject({
      tool: 'job_metrics_summary',
      outcome: 'error',
      errorCodes: ['NOT_FOUND'],
    });
  });

  it('answers bad arguments with a BAD_USER_INPUT tool error, as GraphQL does, and no upstream call', async () => {
    const client = await connectMcp(stack);
    const cases: [string, Record<string, unknown>][] = [
      ['list_jobs', { limit: 'ten' }],
      ['list_jobs', { statuses: ['SLEEPING'] }],
      ['list_jobs', { limt: 3 }],
      ['list_jobs', { constructor: 3 }],
      ['get_job', {}],
      ['get_job', { id: 42.5 }],
    ];
    for (const [tool, args] of cases) {
      const error = toolError(await call(client, tool, args));
      expect(error.code, JSON.stringify(args)).toBe('BAD_USER_INPUT');
    }
    // The same value over GraphQL gets the same code and message.
    const graphql = await stack.query(operationOf('list_jobs'), { limit: 'ten' });
    const viaTool = toolError(await call(client, 'list_jobs', { limit: 'ten' }));
    expect(graphql.errors![0]!.message).toBe(viaTool.message);
    expect(toolError(await call(client, 'list_jobs', { limt: 3 })).message).toBe(
      'Unknown argument `limt` for list_jobs; it takes `statuses`, `limit`, `offset`.',
    );
    expect(stack.simulator.requests).toHaveLength(0);
  });

  it('refuses past a limit with a QUERY_LIMIT_EXCEEDED tool error and no upstream call', async () => {
    const client = await connectMcp(stack);
    // Every job's metrics: more upstream calls than limits.maxUpstreamCalls allows, at the defaults.
    const error = toolError(
      await call(client, 'execute_operation', {
        query: '{ fineTuneJobs { id metrics(limit: 0) { lastCheckpointStep } } }',
      }),
    );
    expect(error.code).toBe('QUERY_LIMIT_EXCEEDED');
    expect(error.extensions.limit).toBe('upstreamCalls');
    // An operation tool's arguments can reach a limit too.
    expect(toolError(await call(client, 'list_jobs', { limit: 100_000 })).code).toBe('QUERY_LIMIT_EXCEEDED');
    expect(stack.simulator.requests).toHaveLength(0);
    expect(started).toHaveLength(2);
  });

  it('offers no mutation: the tools are unknown, and execute_operation refuses one without a call', async () => {
    const client = await connectMcp(stack);
    const running = acmeJob(stack, { status: 'RUNNING' });
    await expect(call(client, 'stop_job', { id: running })).rejects.toThrow(/Unknown tool: stop_job/);
    const error = toolError(
      await call(client, 'execute_operation', {
        query: `mutation { stopFineTuneJob(id: "${running}") { id } }`,
      }),
    );
    expect(error.code).toBe('FORBIDDEN');
    expect(error.message).toContain('mcp.mutations');
    // Refused before any operation, the attempt is still logged with who made it.
    expect(toolLines(stack).at(-1)).toMatchObject({
      tool: 'execute_operation',
      outcome: 'error',
      errorCodes: ['FORBIDDEN'],
      credential: expect.any(String),
    });
    expect(stack.simulator.requests).toHaveLength(0);
    expect(started).toHaveLength(0);
  });

  it('describes the schema and validates a document through the free-form tools', async () => {
    const client = await connectMcp(stack);
    // The SDL as text, and as `sdl` in the structured content.
    const described = await call(client, 'describe_schema', { type: 'FineTuneJob' });
    const { sdl } = described.structuredContent as { sdl: string };
    expect((described.content[0] as { text: string }).text).toBe(sdl);
    expect(sdl).toContain('type FineTuneJob {');
    expect(sdl).toContain('allowedActions: [FineTuneJobAction!]!');
    const whole = await call(client, 'describe_schema');
    expect((whole.structuredContent as { sdl: string }).sdl).toContain('type Mutation {');
    expect(toolError(await call(client, 'describe_schema', { type: 'Nope' })).code).toBe('NOT_FOUND');
    // Read by introspection, through the pipeline.
    expect(started).toEqual(['IntrospectionQuery', 'IntrospectionQuery', 'IntrospectionQuery']);
    expect(toolData(await call(client, 'validate_operation', { query: '{ fineTuneJobs { id } }' }))).toEqual({
      valid: true,
    });
    const invalid = toolError(
      await call(client, 'validate_operation', { query: '{ fineTuneJobs { idd } }' }),
    );
    expect(invalid.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(toolError(await call(client, 'validate_operation', { query: '{ fineTuneJobs ' })).code).toBe(
      'GRAPHQL_PARSE_FAILED',
    );
    const ran = toolData(
      await call(client, 'execute_operation', { query: '{ fineTuneJobs(limit: 1) { id } }' }),
    );
    expect((ran.fineTuneJobs as unknown[]).length).toBe(1);
  });

  it('serves a job as the resource fine-tune-job://{id}: its record and metrics summary', async () => {
    const client = await connectMcp(stack);
    const running = acmeJob(stack, { status: 'RUNNING' });
    const { resourceTemplates } = await client.listResourceTemplates();
    expect(resourceTemplates.map((template) => template.uriTemplate)).toEqual(['fine-tune-job://{id}']);
    const { resources } = await client.listResources();
    expect(resources.length).toBeGreaterThan(0);
    expect(resources[0]!.uri).toMatch(/^fine-tune-job:\/\//);
    const { contents } = await client.readResource({ uri: `fine-tune-job://${running}` });
    const job = JSON.parse((contents[0] as { text: string }).text) as Record<string, unknown>;
    expect(job).toMatchObject({
      id: running,
      status: 'RUNNING',
      metrics: { summary: { checkpoints: expect.any(Number) } },
    });
    await expect(client.readResource({ uri: 'fine-tune-job://ftj-no-such-job' })).rejects.toThrow(
      /Resource not found/,
    );
    await expect(client.readResource({ uri: 'https://example.com/' })).rejects.toThrow(
      /Not a fine-tune job resource/,
    );
  });

  it('answers GET and DELETE with 405: the endpoint is stateless', async () => {
    for (const method of ['GET', 'DELETE']) {
      const response = await fetch(new URL('/mcp', stack.gateway.url), {
        method,
        headers: { accept: 'text/event-stream' },
      });
      expect(response.status).toBe(405);
      expect(response.headers.get('allow')).toBe('POST');
    }
  });
});

describe('mcp.mutations', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ config: { mcp: { mutations: true } } });
  });
  afterAll(() => stack.stop());

  it('offers create, stop and cancel with their hints, and stops a RUNNING job', async () => {
    const client = await connectMcp(stack);
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(
      [...READ_TOOLS, ...MUTATION_TOOLS, ...FREE_FORM_TOOLS].sort(),
    );
    const hints = Object.fromEntries(tools.map((tool) => [tool.name, tool.annotations]));
    expect(hints.stop_job).toMatchObject({
      readOnlyHint: false,
      destructiveHint: true,
      idempotentHint: true,
    });
    expect(hints.cancel_job).toMatchObject({
      readOnlyHint: false,
      destructiveHint: true,
      idempotentHint: true,
    });
    expect(hints.create_job).toMatchObject({
      readOnlyHint: false,
      destructiveHint: false,
      idempotentHint: false,
    });
    const create = tools.find((tool) => tool.name === 'create_job')!;
    // An input object, nested: its fields described and required as the SDL has them.
    expect(create.inputSchema).toMatchObject({
      required: ['input'],
      properties: {
        input: {
          type: 'object',
          required: ['name', 'model', 'datasets'],
          properties: {
            datasets: { type: 'array', items: { type: 'object', required: ['name', 'split', 'fileIds'] } },
          },
        },
      },
    });

    const running = acmeJob(stack, { status: 'RUNNING' });
    const linesBefore = stack.logLines.length;
    const stopped = toolData(await call(client, 'stop_job', { id: running }));
    expect(stopped).toMatchObject({ stopFineTuneJob: { id: running, status: 'STOPPING' } });
    expect(stack.simulator.store.get(stack.simulator.store.organizations[0]!, running)?.status).toBe(
      'STOPPING',
    );
    // The audit trail saw it, as over GraphQL.
    const audit = stack.logLines
      .slice(linesBefore)
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .find((line) => line.msg === 'audit');
    expect(audit).toMatchObject({ action: 'stop', jobId: running, outcome: 'done', transport: 'mcp' });

    // Stopping it again: the job's status does not allow it.
    expect(toolError(await call(client, 'stop_job', { id: running })).code).toBe('CONFLICT');
    expect(toolError(await call(client, 'cancel_job', { id: 'ftj-no-such-job' })).code).toBe('NOT_FOUND');
  });

  it("refuses a write with the gateway's own key, as over GraphQL", async () => {
    const anonymous = await startStack({ serverApiKey: ACME_KEY, config: { mcp: { mutations: true } } });
    try {
      const running = acmeJob(anonymous, { status: 'RUNNING' });
      const error = toolError(await call(await connectMcp(anonymous, null), 'stop_job', { id: running }));
      expect(error.code).toBe('UNAUTHENTICATED');
      expect(anonymous.simulator.requests.filter((request) => request.method === 'POST')).toHaveLength(0);
    } finally {
      await anonymous.stop();
    }
  });
});

describe('credentials', () => {
  it('refuses a call without credentials where the gateway has no key of its own, with no upstream call', async () => {
    const stack = await startStack();
    try {
      const client = await connectMcp(stack, null);
      const error = toolError(await call(client, 'list_jobs'));
      expect(error.code).toBe('UNAUTHENTICATED');
      expect(error.message).toContain('Authorization: Bearer');
      expect(stack.simulator.requests).toHaveLength(0);
      expect(toolLines(stack).at(-1)).toMatchObject({
        tool: 'list_jobs',
        outcome: 'error',
        errorCodes: ['UNAUTHENTICATED'],
      });
      expect(toolError(await call(await connectMcp(stack, 'not a key'), 'list_jobs')).code).toBe(
        'UNAUTHENTICATED',
      );
    } finally {
      await stack.stop();
    }
  });

  it("uses a person's token: their organization's key, their scopes, their name in the log", async () => {
    const idp = await startIdentityProvider();
    const stack = await startStack({
      env: idp.env,
      config: {
        mcp: { mutations: true },
        auth: { organizations: { claim: 'org', keys: { acme: ACME_KEY } } },
      },
    });
    try {
      const running = acmeJob(stack, { status: 'RUNNING' });
      const reader = await connectMcp(
        stack,
        await idp.token('ada@example.com', { org: 'acme', scope: 'openid' }),
      );
      expect(toolData(await call(reader, 'get_job', { id: running }))).toMatchObject({
        fineTuneJob: { id: running },
      });
      expect(toolLines(stack).at(-1)).toMatchObject({
        tool: 'get_job',
        subject: 'ada@example.com',
        organization: 'acme',
      });
      // Without jobs:write, a stop is refused before any call, as over GraphQL.
      stack.simulator.resetRequests();
      const refused = toolError(await call(reader, 'stop_job', { id: running }));
      expect(refused.code).toBe('FORBIDDEN');
      expect(refused.extensions.requiredScopes).toEqual([['jobs:write']]);
      expect(stack.simulator.requests).toHaveLength(0);
      const writer = await connectMcp(
        stack,
        await idp.token('ada@example.com', { org: 'acme', scope: 'jobs:write' }),
      );
      expect(toolData(await call(writer, 'stop_job', { id: running }))).toMatchObject({
        stopFineTuneJob: { status: 'STOPPING' },
      });
      expect(stack.logLines.join('\n')).not.toMatch(/eyJ[\w-]+\.eyJ/);
    } finally {
      await stack.stop();
      await idp.stop();
    }
  });
});

describe('configuration', () => {
  async function withStack(options: StackOptions, test: (stack: Stack) => Promise<void>) {
    const stack = await startStack(options);
    try {
      await test(stack);
    } finally {
      await stack.stop();
    }
  }

  it('offers no free-form tool in production unless enabled', async () => {
    await withStack({ env: { NODE_ENV: 'production' } }, async (stack) => {
      const { tools } = await (await connectMcp(stack)).listTools();
      expect(tools.map((tool) => tool.name).sort()).toEqual(READ_TOOLS);
    });
    await withStack(
      { env: { NODE_ENV: 'production' }, config: { mcp: { freeFormTools: true } } },
      async (stack) => {
        const { tools } = await (await connectMcp(stack)).listTools();
        expect(tools.map((tool) => tool.name).sort()).toEqual([...READ_TOOLS, ...FREE_FORM_TOOLS].sort());
      },
    );
  });

  it('adds a tool for each file of mcp.operations, and refuses a file that is no tool at start', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'mcp-tools-'));
    await writeFile(
      join(folder, 'running_jobs.graphql'),
      '# The jobs training now.\nquery RunningJobs { fineTuneJobs(statuses: [RUNNING]) { id name } }\n',
    );
    await withStack({ config: { mcp: { operations: folder, freeFormTools: false } } }, async (stack) => {
      const client = await connectMcp(stack);
      const { tools } = await client.listTools();
      expect(tools.map((tool) => [tool.name, tool.description])).toEqual([
        ['running_jobs', 'The jobs training now.'],
      ]);
      const data = toolData(await call(client, 'running_jobs'));
      expect(data).toEqual(
        (await stack.query('query RunningJobs { fineTuneJobs(statuses: [RUNNING]) { id name } }')).data,
      );
    });
    const bad: [string, string, RegExp][] = [
      [
        'typo.graphql',
        'query { fineTuneJobs { idd } }',
        /typo\.graphql does not match the schema: Cannot query field "idd"/,
      ],
      ['Bad-Name.graphql', 'query { fineTuneJobs { id } }', /snake_case/],
      ['watch.graphql', 'subscription { fineTuneJob(id: "x") { id } }', /subscription/],
      [
        'two.graphql',
        'query A { fineTuneJobs { id } } query B { fineTuneJobs { id } }',
        /exactly one operation/,
      ],
    ];
    for (const [file, text, message] of bad) {
      const one = await mkdtemp(join(tmpdir(), 'mcp-tools-'));
      await writeFile(join(one, file), text);
      await expect(startStack({ config: { mcp: { operations: one } } })).rejects.toThrow(message);
    }
  });

  it("offers the trusted documents' operations as tools, and with `only` refuses what is not listed", async () => {
    const folder = await mkdtemp(join(tmpdir(), 'mcp-trusted-'));
    const running =
      '# The jobs training now, by name.\nquery RunningJobNames { fineTuneJobs(statuses: [RUNNING]) { id name } }';
    const stop = 'mutation StopListedJob($id: ID!) { stopFineTuneJob(id: $id) { id status } }';
    const manifest = join(folder, 'manifest.json');
    await writeFile(
      manifest,
      JSON.stringify({
        format: 'apollo-persisted-query-manifest',
        version: 1,
        operations: [
          { id: sha256(running), name: 'RunningJobNames', type: 'query', body: running },
          { id: sha256(stop), name: 'StopListedJob', type: 'mutation', body: stop },
        ],
      }),
    );
    await withStack(
      {
        config: {
          mcp: { trustedDocumentTools: true, freeFormTools: true },
          security: { trustedDocuments: { manifest, only: true } },
        },
      },
      async (stack) => {
        const client = await connectMcp(stack);
        const { tools } = await client.listTools();
        // The listed query is a tool (its mutation needs mcp.mutations); the files' tools are not
        // listed, would always be refused, and are not offered.
        expect(tools.map((tool) => tool.name).sort()).toEqual(
          [...FREE_FORM_TOOLS, 'running_job_names'].sort(),
        );
        expect(tools.find((tool) => tool.name === 'running_job_names')!.description).toBe(
          'The jobs training now, by name.',
        );
        const data = toolData(await call(client, 'running_job_names'));
        expect(data).toEqual((await stack.query(running)).data);
        // Only listed documents run, for an assistant as for any client.
        stack.simulator.resetRequests();
        await expect(call(client, 'list_jobs')).rejects.toThrow(/Unknown tool: list_jobs/);
        expect(
          toolError(await call(client, 'execute_operation', { query: '{ fineTuneJobs(limit: 1) { id } }' }))
            .code,
        ).toBe('PERSISTED_QUERY_NOT_IN_LIST');
        expect(stack.simulator.requests).toHaveLength(0);
      },
    );
    // Without `only`, the files' tools are offered beside the list's.
    await withStack(
      { config: { mcp: { trustedDocumentTools: true }, security: { trustedDocuments: { manifest } } } },
      async (stack) => {
        const { tools } = await (await connectMcp(stack)).listTools();
        expect(tools.map((tool) => tool.name)).toEqual(
          expect.arrayContaining([...READ_TOOLS, 'running_job_names']),
        );
      },
    );
  });

  it('serves no /mcp with mcp.enabled false', async () => {
    await withStack({ config: { mcp: { enabled: false } } }, async (stack) => {
      const response = await fetch(new URL('/mcp', stack.gateway.url), { method: 'POST', body: '{}' });
      expect(response.status).toBe(404);
    });
  });
});
