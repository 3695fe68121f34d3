// Trusted documents (security.trustedDocuments: manifest, only), over the wire: a manifest
// made by Apollo's own tool from a small client project's operations
// (test/fixtures/trusted-client/), Apollo Client's persisted-queries link against the gateway,
// the client preset's persisted-documents.json made by graphql-codegen, graphql-ws, and the real
// entry point reloading on SIGHUP.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { generate } from '@graphql-codegen/cli';
import type { FormattedExecutionResult } from 'graphql';
import { getIntrospectionQuery } from 'graphql';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, type GatewayConfigFile } from '../src/config.js';
import { startEntryPoint, stopEntryPoints } from './entry-point-process.js';
import {
  ACME_KEY,
  configFrom,
  holdUpstream,
  metric,
  startStack,
  untilMetric,
  type Stack,
} from './harness.js';
import { connect } from './live-client.js';
import { createTrustedClient, operations, sha256 } from './fixtures/trusted-client/client.js';

const CODE = 'PERSISTED_QUERY_NOT_IN_LIST';
const BASE_ENV = { ATAI_API_URL: 'http://127.0.0.1:1/v0.5' };
const FIXTURE = fileURLToPath(new URL('./fixtures/trusted-client/', import.meta.url));
const MANIFEST_TOOL = fileURLToPath(
  new URL('../node_modules/.bin/generate-persisted-query-manifest', import.meta.url),
);

interface ApolloManifest {
  format: string;
  operations: { id: string; name: string; type: string; body: string }[];
}

let workDir: string;
/** The manifests Apollo's tool wrote: this release's operations, and the next release's. */
const manifests = {} as Record<'current' | 'next', { path: string; text: string; json: ApolloManifest }>;

/** Runs `generate-persisted-query-manifest` in the client project, as its build would. */
async function generateManifest(release: 'current' | 'next') {
  const path = join(workDir, `${release}.json`);
  await promisify(execFile)(
    process.execPath,
    [MANIFEST_TOOL, '--config', 'persisted-query-manifest.config.ts'],
    {
      cwd: FIXTURE,
      env: { ...process.env, TRUSTED_CLIENT_MANIFEST: path, TRUSTED_CLIENT_RELEASE: release },
    },
  );
  const text = await readFile(path, 'utf8');
  manifests[release] = { path, text, json: JSON.parse(text) as ApolloManifest };
}

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'trusted-documents-'));
  await Promise.all([generateManifest('current'), generateManifest('next')]);
}, 120_000);
afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

/** The listed body of an operation, as the tool wrote it (what Apollo Client hashes). */
function listedBody(name: string): string {
  const operation = manifests.next.json.operations.find((o) => o.name === name);
  if (operation === undefined) throw new Error(`${name} is in no manifest`);
  return operation.body;
}

/** A copy of a manifest of its own for one gateway, in a directory of its own (it is watched). */
let copies = 0;
async function manifestCopy(text: string): Promise<string> {
  const dir = await mkdtemp(join(workDir, `copy-${(copies += 1)}-`));
  const path = join(dir, 'persisted-query-manifest.json');
  await writeFile(path, text);
  return path;
}

/** Replaces a file as deploy tools do: a new file renamed over the old one. */
async function replaceFile(path: string, text: string): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  await writeFile(temporary, text);
  await rename(temporary, path);
}

const stacks: Stack[] = [];
async function gateway(config: GatewayConfigFile): Promise<Stack> {
  const stack = await startStack({ config });
  stacks.push(stack);
  return stack;
}
afterEach(async () => {
  await Promise.all(stacks.splice(0).map((stack) => stack.stop()));
});

/** Apollo Client with the persisted-queries link, and every request body it sent. */
function apolloClient(stack: Stack) {
  const sent: Record<string, unknown>[] = [];
  const recordingFetch: typeof fetch = async (input, init) => {
    sent.push(JSON.parse(String(init?.body)) as Record<string, unknown>);
    return fetch(input, init);
  };
  const client = createTrustedClient(stack.gateway.url, { apiKey: ACME_KEY, fetch: recordingFetch });
  return { client, sent };
}

interface WireResult {
  status: number;
  body: FormattedExecutionResult;
}

async function post(stack: Stack, body: unknown): Promise<WireResult> {
  const response = await fetch(stack.gateway.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ACME_KEY}` },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as FormattedExecutionResult };
}

function expectRefused(result: WireResult) {
  const shown = JSON.stringify(result);
  expect(result.status, shown).toBe(400);
  expect(result.body.data, shown).toBeUndefined();
  expect(
    result.body.errors?.map((e) => e.extensions?.code),
    shown,
  ).toEqual([CODE]);
}

function logged(stack: Stack): Record<string, unknown>[] {
  return stack.logLines.map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** Upstream calls the simulator has seen (each REST request the gateway sent it). */
const upstreamCalls = (stack: Stack) => stack.simulator.requests.length;

describe('security.trustedDocuments.only with a manifest from generate-persisted-query-manifest', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({
      config: { security: { trustedDocuments: { manifest: manifests.current.path, only: true } } },
    });
  });
  afterAll(async () => {
    await stack.stop();
  });

  it('reads the manifest the tool wrote: every operation of the client project', () => {
    expect(manifests.current.json.format).toBe('apollo-persisted-query-manifest');
    expect(manifests.current.json.operations.map((o) => o.name).sort()).toEqual([
      'JobById',
      'JobList',
      'JobUpdated',
    ]);
    const loaded = logged(stack).find((line) => line.msg === 'trusted documents loaded');
    expect(loaded).toMatchObject({ documents: 3, format: 'apollo-persisted-query-manifest' });
  });

  it("runs listed operations from Apollo Client's persisted-queries link by hash alone: the body is never sent", async () => {
    const byId = await metric(stack, 'gateway_trusted_documents_requests_total', { resolution: 'id' });
    const { client, sent } = apolloClient(stack);
    const list = await client.query({
      query: operations.JobList,
      variables: { limit: 3 },
      fetchPolicy: 'no-cache',
    });
    const jobs = (list.data as { fineTuneJobs: { id: string; status: string }[] }).fineTuneJobs;
    expect(jobs).toHaveLength(3);
    const one = await client.query({
      query: operations.JobById,
      variables: { id: jobs[0]!.id },
      fetchPolicy: 'no-cache',
    });
    expect(one.data).toEqual({
      fineTuneJob: {
        __typename: 'FineTuneJob',
        id: jobs[0]!.id,
        status: jobs[0]!.status,
        isTerminal: expect.any(Boolean),
      },
    });

    // Two requests, each the hash and the variables only: no retry with the document.
    expect(sent).toHaveLength(2);
    for (const body of sent) {
      expect(body).not.toHaveProperty('query');
      expect(body.extensions).toMatchObject({
        persistedQuery: { version: 1, sha256Hash: expect.any(String) },
      });
    }
    expect(
      sent.map((b) => (b.extensions as { persistedQuery: { sha256Hash: string } }).persistedQuery.sha256Hash),
    ).toEqual([sha256(listedBody('JobList')), sha256(listedBody('JobById'))]);
    // The gateway resolved both from the list by their id.
    expect(await metric(stack, 'gateway_trusted_documents_requests_total', { resolution: 'id' })).toBe(
      byId + 2,
    );
  });

  it('refuses an operation the manifest does not list with PERSISTED_QUERY_NOT_IN_LIST, and calls nothing upstream', async () => {
    const before = upstreamCalls(stack);
    const { client, sent } = apolloClient(stack);
    const result = await client.query({
      query: operations.JobNames,
      fetchPolicy: 'no-cache',
      errorPolicy: 'all',
    });
    expect(result.data).toBeUndefined();
    const errors = (result.error as { errors?: { extensions?: Record<string, unknown> }[] } | undefined)
      ?.errors;
    expect(
      errors?.map((e) => e.extensions?.code),
      String(result.error),
    ).toEqual([CODE]);
    // Refused on its hash: Apollo Client did not retry with the document (it does for NOT_FOUND).
    expect(sent).toHaveLength(1);
    expect(sent[0]).not.toHaveProperty('query');

    // Its text, from any client, is refused the same way.
    expectRefused(await post(stack, { query: listedBody('JobNames') }));
    expect(upstreamCalls(stack)).toBe(before);
  });

  it('refuses an unlisted document before parsing it: a broken one gets the same code, not a parse error', async () => {
    expectRefused(await post(stack, { query: '{ fineTuneJobs(limit: 1) { id ' }));
    expectRefused(await post(stack, { query: 'query Padded {' + ' '.repeat(10_000) + '}' }));
  });

  it('logs a refused request as every operation is logged, without its document', async () => {
    const marker = 'unlistedMarkerField';
    expectRefused(await post(stack, { query: `{ ${marker} }` }));
    const lines = logged(stack).filter(
      (line) =>
        line.msg === 'graphql operation' && JSON.stringify(line.errorCodes) === JSON.stringify([CODE]),
    );
    expect(lines.length).toBeGreaterThan(0);
    expect(stack.logLines.join('\n')).not.toContain(marker);
    expect(await metric(stack, 'gateway_graphql_operations_total', { outcome: CODE })).toBeGreaterThan(0);
  });

  it('runs a listed operation named by documentId (Hive Gateway, the client preset), and refuses an unknown id', async () => {
    const id = manifests.current.json.operations.find((o) => o.name === 'JobList')!.id;
    const ok = await post(stack, { documentId: id, variables: { limit: 2 } });
    expect(ok.status, JSON.stringify(ok)).toBe(200);
    expect((ok.body.data as { fineTuneJobs: unknown[] }).fineTuneJobs).toHaveLength(2);
    expectRefused(await post(stack, { documentId: 'sha256:0000', variables: {} }));
    expectRefused(
      await post(stack, { extensions: { persistedQuery: { version: 1, sha256Hash: 'f'.repeat(64) } } }),
    );
  });

  it('runs a listed query named by hash over GET (useGETForHashedQueries), and refuses an unknown one', async () => {
    const get = async (hash: string) => {
      const url = new URL(stack.gateway.url);
      url.searchParams.set('variables', JSON.stringify({ limit: 2 }));
      url.searchParams.set(
        'extensions',
        JSON.stringify({ persistedQuery: { version: 1, sha256Hash: hash } }),
      );
      const response = await fetch(url, { headers: { authorization: `Bearer ${ACME_KEY}` } });
      return { status: response.status, body: (await response.json()) as FormattedExecutionResult };
    };
    const listed = await get(sha256(listedBody('JobList')));
    expect(
      (listed.body.data as { fineTuneJobs: unknown[] } | undefined)?.fineTuneJobs,
      JSON.stringify(listed),
    ).toHaveLength(2);
    expectRefused(await get(sha256(listedBody('JobNames'))));
  });

  it("accepts the full text of a listed operation, byte for byte, as Apollo Router's safelist does; any other text is refused", async () => {
    const byText = await metric(stack, 'gateway_trusted_documents_requests_total', { resolution: 'text' });
    const exact = await post(stack, { query: listedBody('JobList'), variables: { limit: 1 } });
    expect(exact.status, JSON.stringify(exact)).toBe(200);
    expect((exact.body.data as { fineTuneJobs: unknown[] }).fineTuneJobs).toHaveLength(1);
    expect(await metric(stack, 'gateway_trusted_documents_requests_total', { resolution: 'text' })).toBe(
      byText + 1,
    );
    // The same operation reformatted is another document: not listed.
    expectRefused(await post(stack, { query: `${listedBody('JobList')}\n`, variables: { limit: 1 } }));
    // The text with its hash (an APQ registration) runs, and registers nothing.
    const registered = await post(stack, {
      query: listedBody('JobList'),
      variables: { limit: 1 },
      extensions: { persistedQuery: { version: 1, sha256Hash: sha256(listedBody('JobList')) } },
    });
    expect(registered.status, JSON.stringify(registered)).toBe(200);
  });

  it('keeps introspection where it is enabled (security.introspection, on outside production), as Sandbox needs it', async () => {
    const introspection = await post(stack, { query: getIntrospectionQuery() });
    expect(introspection.status, JSON.stringify(introspection).slice(0, 500)).toBe(200);
    expect(
      (introspection.body.data as { __schema: { queryType: { name: string } } }).__schema.queryType.name,
    ).toBe('Query');
    // Introspection beside a field that is not: refused.
    expectRefused(await post(stack, { query: '{ __schema { queryType { name } } fineTuneJobs { id } }' }));
    // The landing page is served as before.
    const page = await fetch(stack.gateway.url, { headers: { accept: 'text/html' } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
  });

  it('refuses over WebSocket too, and runs listed operations there by hash, by documentId or as their text', async () => {
    const before = upstreamCalls(stack);
    const ws = connect(stack.gateway.url, ACME_KEY);
    try {
      const run = (payload: Record<string, unknown>) =>
        new Promise<{ result?: FormattedExecutionResult; errors?: unknown }>((resolve) => {
          let first: FormattedExecutionResult | undefined;
          const stop = ws.client.subscribe(payload as { query: string }, {
            next: (value) => {
              first ??= value as FormattedExecutionResult;
              stop();
              resolve({ result: first });
            },
            error: (errors) => resolve({ errors }),
            complete: () => resolve({ result: first }),
          });
        });

      const refused = await run({
        query: 'subscription { fineTuneJobsChanged(statuses: [RUNNING]) { id } }',
      });
      expect(refused.errors, JSON.stringify(refused)).toEqual([
        expect.objectContaining({ extensions: { code: CODE } }),
      ]);
      expect(upstreamCalls(stack)).toBe(before);

      const jobs = await run({
        query: '',
        variables: { limit: 1 },
        extensions: { persistedQuery: { version: 1, sha256Hash: sha256(listedBody('JobList')) } },
      });
      const job = (jobs.result?.data as { fineTuneJobs: { id: string }[] } | undefined)?.fineTuneJobs[0];
      expect(job, JSON.stringify(jobs)).toBeDefined();

      const updated = await run({
        query: '',
        documentId: manifests.current.json.operations.find((o) => o.name === 'JobUpdated')!.id,
        variables: { id: job!.id },
      });
      expect(updated.result?.data, JSON.stringify(updated)).toEqual({
        fineTuneJobUpdated: { __typename: 'FineTuneJob', id: job!.id, status: expect.any(String) },
      });

      // What Apollo Client's GraphQLWsLink sends: the listed text (and the link's hash).
      const asText = await run({ query: listedBody('JobById'), variables: { id: job!.id } });
      expect(asText.result?.data, JSON.stringify(asText)).toMatchObject({ fineTuneJob: { id: job!.id } });
    } finally {
      await ws.dispose();
    }
  });
});

describe('introspection off (security.introspection: false)', () => {
  it('is refused like any unlisted document, before parsing', async () => {
    const stack = await gateway({
      security: {
        introspection: false,
        trustedDocuments: { manifest: manifests.current.path, only: true },
      },
    });
    expectRefused(await post(stack, { query: getIntrospectionQuery() }));
    expect(await metric(stack, 'gateway_trusted_documents_requests_total', { resolution: 'refused' })).toBe(
      1,
    );
  });
});

describe('security.trustedDocuments without only', () => {
  it('runs listed operations by id, and any other document as before (APQ included)', async () => {
    const stack = await gateway({ security: { trustedDocuments: { manifest: manifests.current.path } } });
    const { client, sent } = apolloClient(stack);
    const listed = await client.query({
      query: operations.JobList,
      variables: { limit: 1 },
      fetchPolicy: 'no-cache',
    });
    expect((listed.data as { fineTuneJobs: unknown[] }).fineTuneJobs).toHaveLength(1);
    expect(sent).toHaveLength(1);

    // Unlisted: Apollo Client's APQ round trip (hash, PERSISTED_QUERY_NOT_FOUND, hash and text).
    const unlisted = await client.query({ query: operations.JobNames, fetchPolicy: 'no-cache' });
    expect((unlisted.data as { fineTuneJobs: unknown[] }).fineTuneJobs).toHaveLength(2);
    expect(sent).toHaveLength(3);
    expect(sent[2]).toHaveProperty('query');
    expect(await metric(stack, 'gateway_trusted_documents_requests_total', { resolution: 'refused' })).toBe(
      0,
    );
  });
});

describe('reloading the manifest', () => {
  it('swaps in the new list when the file changes, and the new operation runs by hash', async () => {
    const path = await manifestCopy(manifests.current.text);
    const stack = await gateway({ security: { trustedDocuments: { manifest: path, only: true } } });
    const { client } = apolloClient(stack);
    const refused = await client.query({
      query: operations.JobNames,
      fetchPolicy: 'no-cache',
      errorPolicy: 'all',
    });
    expect(refused.data).toBeUndefined();

    // The client's next release ships: its manifest replaces the file.
    await replaceFile(path, manifests.next.text);
    await untilMetric(stack, 'gateway_trusted_documents_reloads_total', (n) => n >= 1, { outcome: 'loaded' });
    expect(await metric(stack, 'gateway_trusted_documents')).toBe(4);
    expect(
      logged(stack)
        .filter((line) => line.msg === 'trusted documents loaded')
        .at(-1),
    ).toMatchObject({
      trigger: 'file change',
      documents: 4,
    });
    const listed = await client.query({ query: operations.JobNames, fetchPolicy: 'no-cache' });
    expect((listed.data as { fineTuneJobs: unknown[] }).fineTuneJobs).toHaveLength(2);
  });

  it('drops no request: one in flight across a reload that delists its operation finishes, the next is refused', async () => {
    const path = await manifestCopy(manifests.next.text);
    const stack = await gateway({ security: { trustedDocuments: { manifest: path, only: true } } });
    const hash = sha256(listedBody('JobNames'));
    const hold = holdUpstream(stack, 'listJobs');
    const resolved = stack.untilOperationsResolved(stack.operationsResolved + 1);
    const inFlight = post(stack, { extensions: { persistedQuery: { version: 1, sha256Hash: hash } } });
    await resolved;
    await replaceFile(path, manifests.current.text);
    await untilMetric(stack, 'gateway_trusted_documents_reloads_total', (n) => n >= 1, { outcome: 'loaded' });
    hold.release();
    const finished = await inFlight;
    expect(finished.status, JSON.stringify(finished)).toBe(200);
    expect((finished.body.data as { fineTuneJobs: unknown[] }).fineTuneJobs).toHaveLength(2);
    expectRefused(await post(stack, { extensions: { persistedQuery: { version: 1, sha256Hash: hash } } }));
  });

  it('keeps the last good list when the new file is broken, and says why in one warn line', async () => {
    const path = await manifestCopy(manifests.current.text);
    const stack = await gateway({ security: { trustedDocuments: { manifest: path, only: true } } });

    const broken = JSON.parse(manifests.next.text) as ApolloManifest;
    delete (broken.operations[1] as Partial<ApolloManifest['operations'][number]>).body;
    await replaceFile(path, JSON.stringify(broken));
    await untilMetric(stack, 'gateway_trusted_documents_reloads_total', (n) => n >= 1, { outcome: 'kept' });

    const warnings = logged(stack).filter((line) => line.level === 40);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({
      msg: 'trusted documents not reloaded; the last good list stays in use',
      trigger: 'file change',
      documents: 3,
      reason: expect.stringMatching(/^operations\.1\.body: /),
    });
    // The old list still serves; the broken file's new operation is not in it.
    const { client } = apolloClient(stack);
    const listed = await client.query({
      query: operations.JobList,
      variables: { limit: 1 },
      fetchPolicy: 'no-cache',
    });
    expect((listed.data as { fineTuneJobs: unknown[] }).fineTuneJobs).toHaveLength(1);
    expectRefused(
      await post(stack, {
        extensions: { persistedQuery: { version: 1, sha256Hash: sha256(listedBody('JobNames')) } },
      }),
    );

    // Not JSON at all: kept again, one more line.
    await replaceFile(path, '{ "format": "apollo-persisted-query-manifest", ');
    await untilMetric(stack, 'gateway_trusted_documents_reloads_total', (n) => n >= 2, { outcome: 'kept' });
    const more = logged(stack).filter((line) => line.level === 40);
    expect(more).toHaveLength(2);
    expect(more[1]!.reason).toMatch(/^not JSON/);
    expect(await metric(stack, 'gateway_trusted_documents')).toBe(3);
  });
});

describe("graphql-codegen client preset's persisted-documents.json", () => {
  it('is read and mapped: documentId by its key, the APQ hash of its body, anything else refused', async () => {
    const output = join(workDir, 'codegen', 'gql/');
    await generate(
      {
        cwd: fileURLToPath(new URL('..', import.meta.url)),
        silent: true,
        schema: ['schema/*.graphql', 'schema/federation/*.graphql'],
        documents: [join(FIXTURE, 'src/**/*.graphql')],
        generates: { [output]: { preset: 'client', presetConfig: { persistedDocuments: true } } },
      },
      true,
    );
    const path = join(output, 'persisted-documents.json');
    const documents = JSON.parse(await readFile(path, 'utf8')) as Record<string, string>;
    const [id, body] = Object.entries(documents).find(([, text]) => text.startsWith('query JobList'))!;
    expect(id).toMatch(/^sha256:[0-9a-f]{64}$/);

    const stack = await gateway({ security: { trustedDocuments: { manifest: path, only: true } } });
    expect(logged(stack).find((line) => line.msg === 'trusted documents loaded')).toMatchObject({
      format: 'client-preset-persisted-documents',
      documents: 3,
    });
    const byId = await post(stack, { documentId: id, variables: { limit: 2 } });
    expect(
      (byId.body.data as { fineTuneJobs: unknown[] } | undefined)?.fineTuneJobs,
      JSON.stringify(byId),
    ).toHaveLength(2);
    const byHash = await post(stack, {
      variables: { limit: 1 },
      extensions: { persistedQuery: { version: 1, sha256Hash: sha256(body) } },
    });
    expect(
      (byHash.body.data as { fineTuneJobs: unknown[] } | undefined)?.fineTuneJobs,
      JSON.stringify(byHash),
    ).toHaveLength(1);
    // Apollo's manifest body of the same operation is another text (it adds __typename).
    expectRefused(await post(stack, { query: listedBody('JobList'), variables: { limit: 1 } }));
  });
});

describe('configuration', () => {
  it.each([
    [
      { manifest: 'ftp://example.com/m.json' },
      /^Invalid security\.trustedDocuments\.manifest in gateway\.config\.yaml: must be a file path or an http\(s\) URL/,
    ],
    [{ only: true }, /^Missing key security\.trustedDocuments\.manifest in gateway\.config\.yaml$/],
  ])('refuses %o with one line, never showing the manifest (it may carry a token)', (documents, message) => {
    const load = () => configFrom({ security: { trustedDocuments: documents } }, BASE_ENV);
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(message);
    expect(load).not.toThrow(/example\.com/);
  });

  it('refuses only with a federation subgraph: the router enforces the list', () => {
    const load = () =>
      configFrom(
        {
          security: { trustedDocuments: { manifest: 'm.json', only: true } },
          federation: { subgraph: true },
        },
        BASE_ENV,
      );
    expect(load).toThrow(/^security\.trustedDocuments\.only cannot be used with federation\.subgraph/);
  });

  it('takes a path or an http(s) URL', () => {
    const documents = (trustedDocuments?: object) =>
      configFrom({ security: { trustedDocuments } }, BASE_ENV).security.trustedDocuments;
    expect(documents({ manifest: './m.json' })).toEqual({
      source: { kind: 'file', path: './m.json' },
      only: false,
    });
    expect(documents({ manifest: 'https://cdn.example.com/m.json', only: true })).toEqual({
      source: { kind: 'url', url: 'https://cdn.example.com/m.json' },
      only: true,
    });
    expect(documents()).toBeUndefined();
  });
});

describe('the entry point (node dist/main.js)', () => {
  let manifestServer: Server | undefined;
  afterEach(async () => {
    await stopEntryPoints();
    if (manifestServer) await new Promise((resolve) => manifestServer!.close(resolve));
    manifestServer = undefined;
  });

  // The manifest's URL may carry a token: the file names the variable, as for any secret.
  const startMain = (manifest: string) =>
    startEntryPoint(
      { PORT: '0', HOST: '127.0.0.1', MANIFEST: manifest },
      { config: 'security:\n  trustedDocuments:\n    manifest: ${env.MANIFEST}\n    only: true\n' },
    );

  /** Waits for a line of output that matches (the test's timeout is the only bound). */
  async function line(read: () => string, pattern: RegExp): Promise<string> {
    for (;;) {
      const found = read()
        .split('\n')
        .find((text) => pattern.test(text));
      if (found !== undefined) return found;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** Waits for a JSON log line that matches. */
  async function logLine(read: () => string, matches: (entry: Record<string, unknown>) => boolean) {
    for (;;) {
      const found = read()
        .split('\n')
        .flatMap((text) => {
          try {
            return [JSON.parse(text) as Record<string, unknown>];
          } catch {
            return []; // not a log line, or one still arriving
          }
        })
        .find(matches);
      if (found !== undefined) return found;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  it('reads a manifest from a URL at start, and again on SIGHUP; a failed fetch keeps the list', async () => {
    let served = { status: 200, text: manifests.current.text };
    manifestServer = createServer((_request, response) => {
      response.writeHead(served.status, { 'content-type': 'application/json' }).end(served.text);
    });
    await new Promise<void>((resolve) => manifestServer!.listen(0, '127.0.0.1', resolve));
    const manifestUrl = `http://127.0.0.1:${(manifestServer.address() as AddressInfo).port}/persisted-query-manifest.json?token=secret-token`;

    const main = startMain(manifestUrl);
    const ready = await line(main.stdout, /ready at http:\/\/\S+\/graphql/);
    const url = ready.match(/ready at (http:\/\/\S+\/graphql)/)![1]!;
    const byHash = async () => {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          extensions: { persistedQuery: { version: 1, sha256Hash: sha256(listedBody('JobNames')) } },
        }),
      });
      return { status: response.status, body: (await response.json()) as FormattedExecutionResult };
    };
    expectRefused(await byHash());

    served = { status: 200, text: manifests.next.text };
    main.child.kill('SIGHUP');
    const reloaded = await logLine(
      main.stdout,
      (entry) => entry.msg === 'trusted documents loaded' && entry.trigger === 'SIGHUP',
    );
    expect(reloaded).toMatchObject({ documents: 4, source: manifestUrl.split('?')[0] });
    const listed = await byHash();
    expect(listed.status, JSON.stringify(listed)).toBe(200);
    expect((listed.body.data as { fineTuneJobs: unknown[] }).fineTuneJobs).toHaveLength(2);

    served = { status: 503, text: 'unavailable' };
    main.child.kill('SIGHUP');
    const kept = await logLine(main.stdout, (entry) => entry.level === 40);
    expect(kept).toMatchObject({
      trigger: 'SIGHUP',
      reason: "HTTP 503 from the manifest's URL",
      documents: 4,
    });
    expect((await byHash()).status).toBe(200);
    expect(main.stdout()).not.toContain('secret-token');

    main.child.kill('SIGTERM');
    const [code] = await main.exited;
    expect(code).toBe(0);
  });

  it('refuses to start, in one line, with a manifest it cannot read', async () => {
    const missing = join(workDir, 'missing', 'persisted-query-manifest.json');
    const main = startMain(missing);
    const [code] = await main.exited;
    expect(code).toBe(1);
    expect(main.stdout()).toBe('');
    expect(main.stderr().trim().split('\n')).toEqual([
      `fine-tune-gateway: Invalid security.trustedDocuments.manifest (${missing}): cannot be read (ENOENT)`,
    ]);
  });
});
