// The stdio entry point (`npm run mcp`, the `fine-tune-gateway-mcp` bin: dist/mcp-stdio.js, built
// by the global setup) driven by the SDK's own Client over its stdio transport, which starts it as
// an assistant does. It relays to a running gateway's /mcp: the gateway's tools, answers and
// refusals, against a test's gateway and against `npm start`'s demo.
import { readFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startEntryPoint, stopEntryPoints, waitForOutput } from './entry-point-process.js';
import { ACME_KEY, startStack, type Stack } from './harness.js';
import { jobRecord } from './jobs.js';

const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  await stopEntryPoints();
});

/** The bin package.json names, started by the SDK's stdio transport with only `env` of ours. */
function relay(env: Record<string, string>, args: string[] = []) {
  const { bin } = JSON.parse(readFileSync('package.json', 'utf8')) as { bin: Record<string, string> };
  return new StdioClientTransport({
    command: process.execPath,
    args: [bin['fine-tune-gateway-mcp']!, ...args],
    env,
    stderr: 'pipe',
  });
}

async function connectOverStdio(env: Record<string, string>): Promise<Client> {
  const client = new Client({ name: 'mcp-stdio-test', version: '1.0.0' });
  await client.connect(relay(env));
  clients.push(client);
  return client;
}

function textOf(result: CallToolResult): string {
  return (result.content[0] as { text: string }).text;
}

describe('relaying to a gateway', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(() => stack.stop());

  it("offers the gateway's tools and answers with its answers, the caller's token sent", async () => {
    const client = await connectOverStdio({
      FINE_TUNE_GATEWAY_URL: new URL('/mcp', stack.gateway.url).href,
      FINE_TUNE_GATEWAY_TOKEN: ACME_KEY,
    });
    expect(client.getServerVersion()?.name).toBe('fine-tune-gateway');
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name)).toContain('job_metrics_summary');
    const list = tools.find((tool) => tool.name === 'list_jobs')!;
    expect(list.inputSchema.properties).toHaveProperty('statuses');

    const acme = stack.simulator.store.organizations[0]!;
    const record = jobRecord(acme, { status: 'RUNNING' });
    stack.simulator.store.put(acme, record);
    const args = { id: record.id };
    const result = (await client.callTool({ name: 'get_job', arguments: args })) as CallToolResult;
    const graphql = await stack.query(readFileSync('mcp-tools/get_job.graphql', 'utf8'), args);
    expect(result.structuredContent).toEqual(graphql.data);

    const summary = (await client.callTool({
      name: 'job_metrics_summary',
      arguments: args,
    })) as CallToolResult;
    const summaryOverGraphql = await stack.query(
      readFileSync('mcp-tools/job_metrics_summary.graphql', 'utf8'),
      args,
    );
    expect(summary.structuredContent).toEqual(summaryOverGraphql.data);

    // A limit's refusal comes back as the tool error the gateway made.
    const limited = (await client.callTool({
      name: 'list_jobs',
      arguments: { limit: 100_000 },
    })) as CallToolResult;
    expect(limited.isError).toBe(true);
    expect(textOf(limited)).toMatch(/^QUERY_LIMIT_EXCEEDED: /);

    const missing = (await client.callTool({
      name: 'get_job',
      arguments: { id: 'ftj-nope' },
    })) as CallToolResult;
    expect(missing.isError).toBe(true);
    expect(textOf(missing)).toMatch(/^NOT_FOUND: /);
    // The gateway called the upstream with the caller's key.
    expect(stack.simulator.requests.at(-1)).toMatchObject({
      path: expect.stringContaining('ftj-nope'),
      organization: acme.name,
    });
  });

  it('refuses, from the gateway, a call without credentials where it has no key of its own', async () => {
    const client = await connectOverStdio({ FINE_TUNE_GATEWAY_URL: new URL('/mcp', stack.gateway.url).href });
    const refused = (await client.callTool({ name: 'list_jobs', arguments: {} })) as CallToolResult;
    expect(refused.isError).toBe(true);
    expect(textOf(refused)).toMatch(/^UNAUTHENTICATED: /);
  });
});

describe('when the gateway cannot be reached', () => {
  it('answers the assistant with an error instead of leaving it waiting', async () => {
    // Port 1: nothing listens there (tests bind only ports the system picks).
    const url = 'http://127.0.0.1:1/mcp';
    const client = new Client({ name: 'mcp-stdio-test', version: '1.0.0' });
    await expect(client.connect(relay({ FINE_TUNE_GATEWAY_URL: url }))).rejects.toThrow(
      new RegExp(`The gateway at ${url.replace(/[./]/g, '\\$&')} did not answer`),
    );
    await client.close();
  });

  it('says so on stderr and exits for a URL that is no URL', async () => {
    const transport = relay({}, ['--url', 'not a url']);
    let stderr = '';
    // The transport's stderr exists before the process does: nothing it writes is missed.
    transport.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<void>((resolve) => (transport.onclose = resolve));
    await transport.start();
    await exited;
    expect(stderr).toContain('fine-tune-gateway-mcp: not a URL: "not a url"');
  });
});

describe("against `npm start`'s demo", () => {
  it('lists the tools, answers a read and refuses past a limit', async () => {
    const main = startEntryPoint({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn' });
    const [, graphqlUrl] = await waitForOutput(main.stdout, /ready at (http:\/\/\S+\/graphql)/);
    const client = await connectOverStdio({ FINE_TUNE_GATEWAY_URL: new URL('/mcp', graphqlUrl).href });
    const { tools } = await client.listTools();
    // Outside production: the read tools and the free-form ones; no mutation until enabled.
    expect(tools.map((tool) => tool.name).sort()).toEqual([
      'describe_schema',
      'execute_operation',
      'get_job',
      'job_metrics_summary',
      'list_jobs',
      'validate_operation',
    ]);
    // The demo's own key serves a caller without one, on localhost.
    const listed = (await client.callTool({ name: 'list_jobs', arguments: { limit: 3 } })) as CallToolResult;
    expect(listed.isError ?? false).toBe(false);
    expect((listed.structuredContent as { fineTuneJobs: unknown[] }).fineTuneJobs).toHaveLength(3);
    const refused = (await client.callTool({
      name: 'execute_operation',
      arguments: { query: '{ fineTuneJobs { id metrics(limit: 0) { lastCheckpointStep } } }' },
    })) as CallToolResult;
    expect(refused.isError).toBe(true);
    expect(textOf(refused)).toMatch(/^QUERY_LIMIT_EXCEEDED: /);
  });
});
