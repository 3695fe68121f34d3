// The explorers in a real browser: headless Chromium (Debian's package, no browser download)
// driven by playwright-core against the simulator and the gateway on loopback. GraphiQL runs a
// query and a subscription with the key from its Headers tab and loads nothing from another
// host; the Sandbox landing page points at this gateway and links to GraphiQL. With
// SCREENSHOTS_DIR set, the GraphiQL and Sandbox tests save graphiql.png and sandbox.png there.
//
//   npx vitest run test/browser.test.ts
//   SCREENSHOTS_DIR=docs/images npx vitest run test/browser.test.ts
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Kind, parse } from 'graphql';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SimulatedOrganization } from '../src/simulator/store.js';
import { ACME_KEY, startStack, type Stack } from './harness.js';
import { jobRecord } from './jobs.js';

const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium'].find(
  (candidate): candidate is string => candidate !== undefined && candidate !== '' && existsSync(candidate),
);
const SCREENSHOTS_DIR = process.env.SCREENSHOTS_DIR;
const require = createRequire(import.meta.url);

/** The URLs (src, href) a page's HTML names. */
function urlsIn(html: string): string[] {
  return [...html.matchAll(/\b(?:src|href)="([^"]+)"/g)].map((match) => match[1]!);
}

/** On this machine: loopback, or no host at all (a data: URL). */
function isLocal(url: string): boolean {
  const { protocol, hostname } = new URL(url);
  return protocol === 'data:' || ['127.0.0.1', 'localhost', '[::1]'].includes(hostname);
}

/** What the functions run in the page use of it (the project's types have no DOM library). */
interface InPage {
  document: { querySelector(selector: string): { CodeMirror?: { getValue(): string } } | null };
  getComputedStyle(element: unknown): { opacity: string };
  /** Sandbox's page sets it: the endpoint Sandbox opens. */
  initialEndpoint?: string;
}

function htmlPage(url: string) {
  return fetch(url, { headers: { accept: 'text/html' } });
}

let sandbox: Stack;
let graphiql: Stack;
let production: Stack;
let acme: SimulatedOrganization;

beforeAll(async () => {
  [sandbox, graphiql, production] = await Promise.all([
    // Subscriptions poll fast so a change shows soon; the test waits on the page, not on time.
    startStack({ config: { subscriptions: { pollMs: 50, activePollMs: 50 } } }),
    startStack({ config: { explorer: { page: 'graphiql' } } }),
    startStack({ env: { NODE_ENV: 'production' } }),
  ]);
  acme = graphiql.simulator.store.organizations[0]!;
});
afterAll(() => Promise.all([sandbox?.stop(), graphiql?.stop(), production?.stop()]));

describe('the explorer over HTTP', () => {
  it("serves GraphiQL's files from node_modules, typed, cached for good, and nothing from another host", async () => {
    const page = await fetch(new URL('/explorer', sandbox.gateway.url));
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(page.headers.get('cache-control')).toBe('no-cache');
    expect(page.headers.get('content-security-policy')).toMatch(/default-src 'none'.*connect-src 'self'/);
    const urls = urlsIn(await page.text());
    // The icon (data:), the stylesheet, React, ReactDOM and GraphiQL; every one relative.
    expect(urls).toHaveLength(5);
    for (const url of urls) expect(url, url).toMatch(/^(data:|explorer\/)/);

    const graphiqlDir = path.dirname(require.resolve('graphiql/package.json'));
    const expected: Record<string, { type: string; file: string }> = {
      'graphiql.min.js': { type: 'text/javascript', file: path.join(graphiqlDir, 'graphiql.min.js') },
      'graphiql.min.css': { type: 'text/css', file: path.join(graphiqlDir, 'graphiql.min.css') },
      'react.production.min.js': {
        type: 'text/javascript',
        file: path.join(path.dirname(require.resolve('react/package.json')), 'umd/react.production.min.js'),
      },
      'react-dom.production.min.js': {
        type: 'text/javascript',
        file: path.join(
          path.dirname(require.resolve('react-dom/package.json')),
          'umd/react-dom.production.min.js',
        ),
      },
    };
    for (const url of urls.filter((u) => !u.startsWith('data:'))) {
      const response = await fetch(new URL(url, sandbox.gateway.url));
      const name = path.basename(url);
      expect(response.status, url).toBe(200);
      expect(response.headers.get('content-type'), url).toBe(`${expected[name]!.type}; charset=utf-8`);
      expect(response.headers.get('cache-control'), url).toBe('public, max-age=31536000, immutable');
      const body = Buffer.from(await response.arrayBuffer());
      expect(body.equals(readFileSync(expected[name]!.file)), url).toBe(true);
      if (name.endsWith('.css')) {
        // Its fonts and images are inlined: a url() to another host would need the internet.
        const targets = [...body.toString().matchAll(/url\(\s*['"]?([^'")\s]*)/g)].map((m) => m[1]!);
        expect(targets.length).toBeGreaterThan(0);
        expect(targets.filter((target) => !target.startsWith('data:'))).toEqual([]);
      }
    }
  });

  it('with explorer.page: graphiql, a browser gets GraphiQL at /graphql, and clients still get GraphQL', async () => {
    const landing = await htmlPage(graphiql.gateway.url);
    expect(landing.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await landing.text();
    expect(html).toBe(await (await fetch(new URL('/explorer', graphiql.gateway.url))).text());
    expect(html).not.toMatch(/apollographql\.com/);
    const response = await graphiql.query('{ fineTuneJobs(limit: 1) { id } }');
    expect(response.data?.fineTuneJobs).toHaveLength(1);
  });

  it("Sandbox's landing page points at this endpoint (initialEndpoint) and links to GraphiQL", async () => {
    const html = await (await htmlPage(sandbox.gateway.url)).text();
    expect(html).toContain('embeddable-sandbox');
    // The endpoint is the page's own URL: this gateway's /graphql.
    expect(html).toMatch(/var initialEndpoint = window\.location\.href;/);
    expect(html).toContain('<a href="explorer">GraphiQL, served by this gateway</a>');
    // The bar's style carries the page's CSP nonce, or the browser would not apply it.
    const nonce = /script-src 'self' 'nonce-([0-9a-f]+)'/.exec(html)?.[1];
    expect(nonce).toBeDefined();
    expect(html).toContain(`<style nonce="${nonce}">\n  #embeddableSandbox { top: 2rem;`);
  });

  it('shows neither where the landing page is off (production)', async () => {
    const explorer = await fetch(new URL('/explorer', production.gateway.url));
    expect(explorer.status).toBe(404);
    expect(
      ((await explorer.json()) as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions.code,
    ).toBe('NOT_FOUND');
    const asset = urlsIn(await (await fetch(new URL('/explorer', sandbox.gateway.url))).text()).find((u) =>
      u.endsWith('graphiql.min.js'),
    )!;
    expect((await fetch(new URL(asset, production.gateway.url))).status).toBe(404);
    expect(await (await htmlPage(production.gateway.url)).text()).not.toMatch(/<html|graphiql|sandbox/i);
  });
});

describe.skipIf(CHROMIUM === undefined)(
  CHROMIUM === undefined
    ? 'the explorer in Chromium: SKIPPED, no Chromium at CHROMIUM_PATH or /usr/bin/chromium'
    : `the explorer in Chromium (${CHROMIUM})`,
  { timeout: 90_000 },
  () => {
    let browser: Browser;
    let context: BrowserContext;

    /** What a page asked for, and what it reported as errors (a CSP violation is one). */
    interface Watched {
      page: Page;
      requests: string[];
      sockets: string[];
      errors: string[];
      /** Where the page's clock started, when it runs on Playwright's (openGraphiql's `clock`). */
      clockInstalledAt?: number;
    }

    beforeAll(async () => {
      browser = await chromium.launch({ executablePath: CHROMIUM!, args: ['--no-sandbox'], headless: true });
    });
    afterAll(() => browser?.close());
    afterEach(() => context?.close());

    async function openPage(): Promise<Watched> {
      context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      // Playwright's waits have no deadline of their own: the test's timeout is the only bound.
      context.setDefaultTimeout(0);
      // Nothing leaves the machine, even when a test fails: requests elsewhere are refused
      // (and still recorded by the 'request' event).
      await context.route(
        (url) => !isLocal(url.href),
        (route) => route.abort('blockedbyclient'),
      );
      const page = await context.newPage();
      const watched: Watched = { page, requests: [], sockets: [], errors: [] };
      page.on('request', (request) => watched.requests.push(request.url()));
      page.on('websocket', (socket) => watched.sockets.push(socket.url()));
      page.on('pageerror', (error) => watched.errors.push(error.message));
      page.on('console', (message) => {
        if (message.type() === 'error') watched.errors.push(message.text());
      });
      return watched;
    }

    /** Replaces an editor's text as a user pasting would (keyboard, not GraphiQL's API). */
    async function replaceText(page: Page, editor: string, text: string) {
      await page.locator(`${editor} .CodeMirror`).click();
      await page.keyboard.press('ControlOrMeta+A');
      await page.keyboard.insertText(text);
    }

    /**
     * GraphiQL with the key in its Headers tab. With `clock`, the page's timers run on Playwright's
     * clock, so a test can hold them still (pasteAndRun).
     */
    async function openGraphiql(url: string, { clock = false } = {}): Promise<Watched> {
      const watched = await openPage();
      if (clock) {
        watched.clockInstalledAt = Date.now();
        await watched.page.clock.install({ time: watched.clockInstalledAt });
      }
      const introspection = watched.page.waitForResponse(
        (response) => response.request().postData()?.includes('IntrospectionQuery') ?? false,
      );
      await watched.page.goto(url);
      // GraphiQL loaded the schema through the gateway (its introspection passes the query limits).
      const schema = (await (await introspection).json()) as { data?: { __schema?: unknown } };
      expect(schema.data?.__schema).toBeDefined();
      await watched.page.locator('.graphiql-query-editor .CodeMirror').waitFor();
      await watched.page.locator('.graphiql-editor-tools button', { hasText: 'Headers' }).click();
      await replaceText(
        watched.page,
        '.graphiql-editor-tool .graphiql-editor:not(.hidden)',
        JSON.stringify({ Authorization: `Bearer ${ACME_KEY}` }),
      );
      return watched;
    }

    /**
     * Runs an operation named `name`, as one who types it would: once GraphiQL has read the text
     * (a moment after the change), which the tab's title shows.
     */
    async function run(page: Page, name: string, document: string) {
      await replaceText(page, '.graphiql-query-editor', document);
      await page.locator('.graphiql-tab-button', { hasText: new RegExp(`^${name}$`) }).waitFor();
      await page.locator('.graphiql-execute-button').click();
    }

    /** What the page sent to run an operation: a POST to /graphql, or a subscribe message on its socket. */
    interface SentOperation {
      via: 'http' | 'ws';
      query: string;
      operationName?: string | null;
    }

    /** The next operation the page sends whose text contains `needle` (introspection aside). */
    function nextOperation(page: Page, needle: string): Promise<SentOperation> {
      return new Promise((resolve) => {
        page.on('request', (request) => {
          const body = request.method() === 'POST' ? (request.postDataJSON() as SentOperation | null) : null;
          if (body?.query.includes(needle)) resolve({ ...body, via: 'http' });
        });
        page.on('websocket', (socket) =>
          socket.on('framesent', ({ payload }) => {
            const message = JSON.parse(payload.toString()) as { type: string; payload?: SentOperation };
            if (message.type === 'subscribe' && message.payload?.query.includes(needle)) {
              resolve({ ...message.payload, via: 'ws' });
            }
          }),
        );
      });
    }

    /** The names of a document's operations (undefined for an anonymous one): all it may send. */
    function operationNames(query: string): (string | undefined)[] {
      return parse(query).definitions.flatMap((definition) =>
        definition.kind === Kind.OPERATION_DEFINITION ? [definition.name?.value] : [],
      );
    }

    /**
     * Pastes `document` over the query and presses Ctrl-Enter at once, inside the 100 ms GraphiQL
     * waits after an edit before it reads the text's operations: the page's clock stands still
     * from the paste until the operation is sent, as if both came within that moment.
     */
    async function pasteAndRun(
      { page, clockInstalledAt }: Watched,
      document: string,
      needle: string,
    ): Promise<SentOperation> {
      // Pausing moves the clock on to a time not yet reached: an hour after it started is, as no
      // test runs that long. The jump fires the timers due by then, before the paste.
      await page.clock.pauseAt(clockInstalledAt! + 3_600_000);
      const sent = nextOperation(page, needle);
      await replaceText(page, '.graphiql-query-editor', document);
      await page.keyboard.press('ControlOrMeta+Enter');
      const operation = await sent;
      await page.clock.resume();
      return operation;
    }

    /** The result pane's text (its CodeMirror's) once it contains `needle`. */
    async function resultContaining(page: Page, needle: string): Promise<string> {
      const handle = await page.waitForFunction((text) => {
        const { document } = globalThis as unknown as InPage;
        const value = document.querySelector('.graphiql-response .CodeMirror')?.CodeMirror?.getValue();
        return value?.includes(text) ? value : false;
      }, needle);
      return (await handle.jsonValue()) as string;
    }

    function expectOnlyLocal(watched: Watched) {
      expect(watched.requests.filter((url) => !isLocal(url))).toEqual([]);
      expect(watched.sockets.filter((url) => !isLocal(url))).toEqual([]);
      expect(watched.errors).toEqual([]);
    }

    it('GraphiQL at /graphql runs a query with the key from its Headers tab and shows the jobs', async () => {
      const watched = await openGraphiql(graphiql.gateway.url);
      const { page } = watched;
      const sent = page.waitForRequest((request) => request.postData()?.includes('fineTuneJobs') ?? false);
      await run(page, 'AllJobs', 'query AllJobs { fineTuneJobs { id status } }');
      // The key went as a header (the gateway has no key of its own here: without it, UNAUTHENTICATED).
      expect((await sent).headers().authorization).toBe(`Bearer ${ACME_KEY}`);
      const ids = graphiql.simulator.store.list(acme, null).map((job) => job.id);
      expect(ids.length).toBeGreaterThan(0);
      const shown = JSON.parse(await resultContaining(page, ids[0]!)) as {
        data: { fineTuneJobs: { id: string; status: string }[] };
      };
      expect(shown.data.fineTuneJobs.map((job) => job.id).sort()).toEqual([...ids].sort());
      expectOnlyLocal(watched);
      if (SCREENSHOTS_DIR) {
        await mkdir(SCREENSHOTS_DIR, { recursive: true });
        await page.screenshot({ path: path.join(SCREENSHOTS_DIR, 'graphiql.png') });
      }
    });

    it('GraphiQL runs a subscription over graphql-ws and shows each change of the job', async () => {
      const org = sandbox.simulator.store.organizations[0]!;
      const job = jobRecord(org, { status: 'REGISTERED' });
      sandbox.simulator.store.put(org, job);
      const watched = await openGraphiql(new URL('/explorer', sandbox.gateway.url).href);
      const { page } = watched;
      await run(
        page,
        'JobUpdated',
        `subscription JobUpdated { fineTuneJobUpdated(id: "${job.id}") { id status } }`,
      );
      await resultContaining(page, '"status": "REGISTERED"');

      sandbox.simulator.advance();
      const status = sandbox.simulator.store.get(org, job.id)!.status;
      expect(status).not.toBe('REGISTERED');
      const shown = JSON.parse(await resultContaining(page, `"status": "${status}"`)) as {
        data: { fineTuneJobUpdated: { id: string } };
      };
      expect(shown.data.fineTuneJobUpdated.id).toBe(job.id);
      // Over the gateway's own WebSocket endpoint.
      expect(watched.sockets).toContain(sandbox.gateway.url.replace(/^http/, 'ws'));
      expectOnlyLocal(watched);
    });

    it('GraphiQL runs a query pasted over the default one with Ctrl-Enter at once, without the old name', async () => {
      const watched = await openGraphiql(new URL('/explorer', graphiql.gateway.url).href, { clock: true });
      const { page } = watched;
      const document = '{ fineTuneJobs(limit: 2) { id status } }';
      // Before the fix, the default document's name went with the new text: "Unknown operation
      // named \"RecentJobs\"".
      const sent = await pasteAndRun(watched, document, 'fineTuneJobs(limit: 2)');
      expect(sent).toMatchObject({ via: 'http', query: document });
      expect(operationNames(sent.query)).toContain(sent.operationName ?? undefined);
      // Whatever the answer (a JSON object), so an error shows in the failure rather than a wait.
      const shown = JSON.parse(await resultContaining(page, '{')) as {
        data: { fineTuneJobs: { id: string; status: string }[] };
        errors?: unknown;
      };
      expect(shown.errors).toBeUndefined();
      const ids = graphiql.simulator.store.list(acme, null).map((job) => job.id);
      expect(shown.data.fineTuneJobs).toHaveLength(2);
      for (const job of shown.data.fineTuneJobs) expect(ids).toContain(job.id);
      expectOnlyLocal(watched);
    });

    it('GraphiQL runs a subscription pasted over the default one at once over graphql-ws', async () => {
      const org = sandbox.simulator.store.organizations[0]!;
      const job = jobRecord(org, { status: 'REGISTERED' });
      sandbox.simulator.store.put(org, job);
      const watched = await openGraphiql(new URL('/explorer', sandbox.gateway.url).href, { clock: true });
      const { page } = watched;
      const document = `subscription { fineTuneJobUpdated(id: "${job.id}") { id status } }`;
      // GraphiQL picks the socket from the document it last read: the default one, a query.
      const sent = await pasteAndRun(watched, document, 'fineTuneJobUpdated');
      expect(sent).toMatchObject({ via: 'ws', query: document });
      expect(operationNames(sent.query)).toContain(sent.operationName ?? undefined);
      await resultContaining(page, '"status": "REGISTERED"');
      expectOnlyLocal(watched);
    });

    it('GraphiQL sends the name of the operation run from a document with two', async () => {
      const watched = await openGraphiql(new URL('/explorer', graphiql.gateway.url).href);
      const { page } = watched;
      const document = [
        'query OneJob { fineTuneJobs(limit: 1) { id } }',
        'query TwoJobs { fineTuneJobs(limit: 2) { id status } }',
      ].join('\n');
      await replaceText(page, '.graphiql-query-editor', document);
      // GraphiQL has read the text: the tab is named after the first operation.
      await page.locator('.graphiql-tab-button', { hasText: /^OneJob$/ }).waitFor();
      const sent = nextOperation(page, 'TwoJobs');
      // The cursor in the second operation: Ctrl-Enter runs that one.
      await page.locator('.graphiql-query-editor .CodeMirror-line > span', { hasText: 'TwoJobs' }).click();
      await page.keyboard.press('ControlOrMeta+Enter');
      expect(await sent).toMatchObject({ via: 'http', query: document, operationName: 'TwoJobs' });
      const shown = JSON.parse(await resultContaining(page, '{')) as {
        data: { fineTuneJobs: { id: string; status: string }[] };
        errors?: unknown;
      };
      expect(shown.errors).toBeUndefined();
      expect(shown.data.fineTuneJobs).toHaveLength(2);
      expectOnlyLocal(watched);
    });

    it('GraphiQL asks nothing of another host: every request and socket stays on this machine', async () => {
      const watched = await openGraphiql(new URL('/explorer', sandbox.gateway.url).href);
      // The page's own query, as a newcomer would run it first.
      await watched.page.locator('.graphiql-execute-button').click();
      const shown = JSON.parse(await resultContaining(watched.page, '"fineTuneJobs"')) as {
        data: { fineTuneJobs: unknown[] };
      };
      expect(shown.data.fineTuneJobs).toHaveLength(5);
      const paths = watched.requests.map((url) =>
        url.startsWith('data:') ? 'data:' : new URL(url).pathname,
      );
      expect(paths).toEqual(
        expect.arrayContaining([
          '/explorer',
          expect.stringMatching(/^\/explorer\/graphiql@[\d.]+\/graphiql\.min\.css$/),
          expect.stringMatching(/^\/explorer\/react@[\d.]+\/react\.production\.min\.js$/),
          expect.stringMatching(/^\/explorer\/react-dom@[\d.]+\/react-dom\.production\.min\.js$/),
          expect.stringMatching(/^\/explorer\/graphiql@[\d.]+\/graphiql\.min\.js$/),
          '/graphql',
        ]),
      );
      expectOnlyLocal(watched);
    });

    it("Sandbox's landing page in the browser: its endpoint is this gateway, and its bar opens GraphiQL", async () => {
      const { page, requests } = await openPage();
      await page.goto(sandbox.gateway.url);
      expect(await page.evaluate(() => (globalThis as unknown as InPage).initialEndpoint)).toBe(
        sandbox.gateway.url,
      );
      // Apollo's servers are out of reach here (as offline): Sandbox says so, the bar stays.
      expect(requests.some((url) => new URL(url).hostname.endsWith('apollographql.com'))).toBe(true);
      await page.getByText('Apollo Sandbox cannot be loaded').waitFor();
      await page.waitForFunction(() => {
        const { document, getComputedStyle } = globalThis as unknown as InPage;
        return getComputedStyle(document.querySelector('.fallback')).opacity === '1';
      });
      const link = page.getByRole('link', { name: 'GraphiQL, served by this gateway' });
      await link.waitFor();
      if (SCREENSHOTS_DIR) {
        await mkdir(SCREENSHOTS_DIR, { recursive: true });
        await page.screenshot({ path: path.join(SCREENSHOTS_DIR, 'sandbox.png') });
      }
      await link.click();
      await page.waitForURL(new URL('/explorer', sandbox.gateway.url).href);
      await page.locator('.graphiql-query-editor .CodeMirror').waitFor();
    });
  },
);
