// A faithful stand-in for the Archetype AI fine-tune jobs API (shared contract in README),
// served over real HTTP: the embedded upstream of `npm start` and the upstream of every test.
// Control endpoints under /__simulator let tests and load runs inject faults and read the
// request log from another process; in-process users get the same through RunningSimulator.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { KNOWN_JOB_STATUSES, type FineTuneJobRecord } from '../upstream/records.js';
import { FaultTable, SIMULATOR_ROUTES, errorBody, type Fault, type SimulatorRoute } from './faults.js';
import { LivingPopulation, type LivingOptions } from './population.js';
import { DEMO_ORGANIZATIONS, seedDemoData } from './seed.js';
import { SimulatorStore, type SimulatedOrganization } from './store.js';

export const API_BASE_PATH = '/v0.5';

export interface SimulatorOptions {
  port?: number;
  host?: string;
  /** Milliseconds between life-cycle steps; 0 moves jobs only when `advance()` is called. */
  paceMs?: number;
  jobsPerOrganization?: number;
  providerExamples?: boolean;
  organizations?: SimulatedOrganization[];
  /**
   * A living population (the demo's): new jobs keep registering and finished ones age out, so
   * there are always jobs STARTING and RUNNING. Off by default: tests count exact jobs.
   */
  living?: boolean | LivingOptions;
  /** The simulator's clock (ms since the epoch) for every timestamp it writes; Date.now by default. */
  clock?: () => number;
}

/** One request as the simulator saw it: what tests count to prove batching and push-down. */
export interface RecordedRequest {
  route: SimulatorRoute | null;
  method: string;
  path: string;
  /** The raw query string, e.g. `?limit=20&offset=0&statuses=RUNNING`. */
  search: string;
  /** Which organization's key it carried, if a known one. */
  organization: string | null;
  requestId: string | null;
  /** The W3C `traceparent` it carried (the gateway's tracing), if any. */
  traceparent: string | null;
}

export interface RunningSimulator {
  /** Base URL of the API, e.g. `http://127.0.0.1:41234/v0.5`. */
  url: string;
  store: SimulatorStore;
  /** The living population, when `living` is on. */
  population: LivingPopulation | undefined;
  faults: FaultTable;
  requests: RecordedRequest[];
  /** The requests that reached a given route. */
  requestsTo(route: SimulatorRoute): RecordedRequest[];
  /** The most requests to a route that were being handled at the same time (since the reset). */
  peakInFlight(route: SimulatorRoute): number;
  /** Forgets the request log and the in-flight peaks. */
  resetRequests(): void;
  /** Moves every job in progress `steps` steps along its life cycle (and the population with them). */
  advance(steps?: number): void;
  stop(): Promise<void>;
}

interface Reply {
  status: number;
  body: unknown;
}

const STATUSES: ReadonlySet<string> = new Set(KNOWN_JOB_STATUSES);
const JOB_PATH = /^\/fine-tune\/jobs\/([^/]+)(?:\/(stop|cancel|metrics))?$/;

function routeOf(method: string, path: string): { route: SimulatorRoute; jobId?: string } | 'method' | null {
  if (path === '/fine-tune/jobs') {
    if (method === 'GET') return { route: 'listJobs' };
    if (method === 'POST') return { route: 'createJob' };
    return 'method';
  }
  const match = JOB_PATH.exec(path);
  if (!match) return null;
  const jobId = decodeURIComponent(match[1]!);
  const action = match[2];
  const expected = action === 'stop' || action === 'cancel' ? 'PUT' : 'GET';
  if (method !== expected) return 'method';
  const route: SimulatorRoute =
    action === 'stop'
      ? 'stopJob'
      : action === 'cancel'
        ? 'cancelJob'
        : action === 'metrics'
          ? 'getJobMetrics'
          : 'getJob';
  return { route, jobId };
}

function invalid(message: string, status = 422): Reply {
  return { status, body: JSON.parse(errorBody('current', status, message, 'validation_error')) };
}

function notFound(id: string): Reply {
  return {
    status: 404,
    body: JSON.parse(errorBody('current', 404, `Fine-tune job ${id} not found`, 'NOT_FOUND')),
  };
}

/** `limit` and `offset` as the API documents them; a string error when they are not. */
function readPage(query: URLSearchParams): { limit: number; offset: number } | string {
  const limitText = query.get('limit') ?? '-1';
  const offsetText = query.get('offset') ?? '0';
  if (!/^-?\d+$/.test(limitText) || Number(limitText) < -1) return 'limit must be an integer >= -1';
  if (!/^\d+$/.test(offsetText)) return 'offset must be an integer >= 0';
  return { limit: Number(limitText), offset: Number(offsetText) };
}

function page<T>(items: T[], { limit, offset }: { limit: number; offset: number }): T[] {
  return items.slice(offset, limit === -1 ? undefined : offset + limit);
}

function validateCreate(
  body: unknown,
): string | { id?: string; name: string; config: FineTuneJobRecord['config'] } {
  if (typeof body !== 'object' || body === null) return 'body must be a JSON object';
  const b = body as Record<string, unknown>;
  if (typeof b.name !== 'string' || b.name.trim() === '') return 'name is required';
  if (b.id !== undefined && (typeof b.id !== 'string' || b.id.length < 1 || b.id.length > 64)) {
    return 'id must be a string of 1 to 64 characters';
  }
  const config = b.config as Record<string, unknown> | undefined;
  if (typeof config !== 'object' || config === null) return 'config is required';
  if (typeof config.model !== 'string' || config.model === '') return 'config.model is required';
  if (!Array.isArray(config.datasets)) return 'config.datasets must be a list';
  for (const [i, d] of config.datasets.entries()) {
    const ds = d as Record<string, unknown>;
    if (typeof ds?.name !== 'string') return `config.datasets[${i}].name is required`;
    if (ds.split !== 'train' && ds.split !== 'eval')
      return `config.datasets[${i}].split must be train or eval`;
    if (!Array.isArray(ds.file_ids) || !ds.file_ids.every((f) => typeof f === 'string')) {
      return `config.datasets[${i}].file_ids must be a list of strings`;
    }
  }
  return {
    ...(typeof b.id === 'string' && { id: b.id }),
    name: b.name,
    config: {
      model: config.model,
      datasets: (config.datasets as Record<string, unknown>[]).map((d) => ({
        name: d.name as string,
        split: d.split as string,
        file_ids: [...(d.file_ids as string[])],
      })),
    },
  };
}

function generatedId(name: string): string {
  const slug =
    name
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-|-$/g, '')
      .slice(0, 40) || 'job';
  return `ftj-${slug}-${crypto.randomUUID().slice(0, 8)}`;
}

function handleApi(
  store: SimulatorStore,
  org: SimulatedOrganization,
  route: SimulatorRoute,
  jobId: string | undefined,
  query: URLSearchParams,
  rawBody: string,
): Reply {
  if (jobId !== undefined && (jobId.length < 1 || jobId.length > 64)) {
    return invalid('job_id must be 1 to 64 characters');
  }
  switch (route) {
    case 'listJobs': {
      const pageOrError = readPage(query);
      if (typeof pageOrError === 'string') return invalid(pageOrError);
      const statuses = query.getAll('statuses');
      const unknown = statuses.find((s) => !STATUSES.has(s));
      if (unknown !== undefined) return invalid(`unknown status ${unknown}`);
      return { status: 200, body: page(store.list(org, statuses.length ? statuses : null), pageOrError) };
    }
    case 'getJob': {
      const job = store.get(org, jobId!);
      return job ? { status: 200, body: job } : notFound(jobId!);
    }
    case 'getJobMetrics': {
      const pageOrError = readPage(query);
      if (typeof pageOrError === 'string') return invalid(pageOrError);
      const metrics = store.metrics(org, jobId!);
      if (!metrics) return notFound(jobId!);
      return {
        status: 200,
        body: {
          ...(metrics.lastCheckpointStep !== undefined && {
            last_checkpoint_step: metrics.lastCheckpointStep,
          }),
          metrics: page(metrics.entries, pageOrError),
        },
      };
    }
    case 'createJob': {
      let parsed: unknown;
      try {
        parsed = JSON.parse(rawBody);
      } catch {
        return invalid('body is not valid JSON', 400);
      }
      const input = validateCreate(parsed);
      if (typeof input === 'string') return invalid(input);
      const id = input.id ?? generatedId(input.name);
      const created = store.create(org, { ...input, id });
      if (!created) {
        return {
          status: 409,
          body: JSON.parse(
            errorBody('current', 409, `A fine-tune job with id ${id} already exists`, 'job_already_exists'),
          ),
        };
      }
      return { status: 201, body: created };
    }
    case 'stopJob':
    case 'cancelJob': {
      const result = route === 'stopJob' ? store.stop(org, jobId!) : store.cancel(org, jobId!);
      if (result.ok) return { status: 200, body: result.record };
      if (result.reason === 'not-found') return notFound(jobId!);
      const verb = route === 'stopJob' ? 'stop' : 'cancel';
      return {
        status: 409,
        body: JSON.parse(
          errorBody(
            'current',
            409,
            `Cannot ${verb} a job in status ${result.status}`,
            'invalid_state_transition',
          ),
        ),
      };
    }
  }
}

async function readText(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

function send(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(body);
}

/** Applies a fault's changes to a successful answer's body. */
function distort(body: unknown, fault: Fault): string {
  let value = body;
  if (fault.unknownStatus !== undefined) {
    const replace = (job: unknown) => ({ ...(job as object), status: fault.unknownStatus });
    value = Array.isArray(value) ? value.map((job, i) => (i === 0 ? replace(job) : job)) : replace(value);
  }
  if (fault.wrongShape) value = { data: value };
  const text = JSON.stringify(value);
  return fault.malformedJson ? text.slice(0, Math.max(1, Math.floor(text.length / 2))) : text;
}

export async function startSimulator(options: SimulatorOptions = {}): Promise<RunningSimulator> {
  const store = new SimulatorStore(options.organizations ?? DEMO_ORGANIZATIONS, options.clock);
  seedDemoData(store, {
    jobsPerOrganization: options.jobsPerOrganization ?? 24,
    providerExamples: options.providerExamples ?? true,
  });
  const living = options.living === true ? {} : options.living || undefined;
  const population = living ? new LivingPopulation(store, living) : undefined;
  /** One step of the simulator's clock. */
  const step = () => {
    store.advance();
    population?.step();
  };
  const faults = new FaultTable();
  const requests: RecordedRequest[] = [];
  const inFlight = new Map<SimulatorRoute, number>();
  const peaks = new Map<SimulatorRoute, number>();

  /** Counts a request as in flight until its connection answers or closes. */
  function trackInFlight(route: SimulatorRoute, res: ServerResponse): void {
    const now = (inFlight.get(route) ?? 0) + 1;
    inFlight.set(route, now);
    peaks.set(route, Math.max(peaks.get(route) ?? 0, now));
    res.once('close', () => inFlight.set(route, (inFlight.get(route) ?? 1) - 1));
  }

  async function handleControl(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname.slice('/__simulator'.length);
    if (path === '/requests' && req.method === 'GET') return send(res, 200, JSON.stringify(requests));
    // Counts only: cheap to read during a load run, where the full log would be megabytes.
    if (path === '/requests/count' && req.method === 'GET') {
      const byRoute: Record<string, number> = {};
      for (const r of requests) byRoute[r.route ?? 'other'] = (byRoute[r.route ?? 'other'] ?? 0) + 1;
      return send(res, 200, JSON.stringify({ total: requests.length, byRoute }));
    }
    if (path === '/requests' && req.method === 'DELETE') {
      requests.length = 0;
      peaks.clear();
      return send(res, 204, '');
    }
    if (path === '/in-flight-peaks' && req.method === 'GET') {
      return send(res, 200, JSON.stringify(Object.fromEntries(peaks)));
    }
    if (path === '/faults' && req.method === 'DELETE') {
      faults.clear();
      return send(res, 204, '');
    }
    const faultRoute = /^\/faults\/(\w+)$/.exec(path)?.[1] as SimulatorRoute | undefined;
    if (faultRoute && SIMULATOR_ROUTES.includes(faultRoute) && req.method === 'PUT') {
      faults.set(faultRoute, JSON.parse((await readText(req)) || '{}') as Fault);
      return send(res, 204, '');
    }
    if (path === '/advance' && req.method === 'POST') {
      const steps = Number(url.searchParams.get('steps') ?? '1');
      for (let i = 0; i < steps; i++) step();
      return send(res, 204, '');
    }
    send(res, 404, JSON.stringify({ detail: 'Not Found' }));
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://simulator.invalid');
    if (url.pathname.startsWith('/__simulator/')) return handleControl(req, res, url);

    const method = req.method ?? 'GET';
    const path = url.pathname.startsWith(API_BASE_PATH) ? url.pathname.slice(API_BASE_PATH.length) : null;
    const matched = path === null ? null : routeOf(method, path);
    const authorization = req.headers.authorization ?? '';
    const apiKey = /^Bearer\s+(\S+)$/i.exec(authorization)?.[1];
    const org = apiKey === undefined ? undefined : store.organizationForKey(apiKey);
    const route = matched !== null && matched !== 'method' ? matched : null;
    requests.push({
      route: route?.route ?? null,
      method,
      path: url.pathname,
      search: url.search,
      organization: org?.name ?? null,
      requestId: (req.headers['x-request-id'] as string | undefined) ?? null,
      traceparent: (req.headers.traceparent as string | undefined) ?? null,
    });
    const rawBody = await readText(req);

    if (matched === null) return send(res, 404, JSON.stringify({ detail: 'Not Found' }));
    if (matched === 'method') return send(res, 405, JSON.stringify({ detail: 'Method Not Allowed' }));
    trackInFlight(matched.route, res);

    const fault = faults.take(matched.route);
    if (fault?.delayMs) await sleep(fault.delayMs);
    if (fault?.until) await fault.until;
    if (fault?.drop === 'before') return void req.socket.destroy();
    if (fault?.body !== undefined) return send(res, fault.status ?? 200, fault.body);
    if (fault?.status !== undefined) {
      const message = fault.echoKey
        ? `Request with ${authorization} failed`
        : `Simulated failure (${fault.status})`;
      const headers: Record<string, string> = {
        ...fault.headers,
        ...(fault.retryAfter !== undefined && { 'retry-after': String(fault.retryAfter) }),
      };
      if (fault.envelope === 'text') headers['content-type'] = 'text/html';
      return send(
        res,
        fault.status,
        errorBody(fault.envelope ?? 'current', fault.status, message, fault.code, undefined, fault.details),
        headers,
      );
    }

    if (apiKey === undefined) return send(res, 401, JSON.stringify({ detail: 'Not authenticated' }));
    if (org === undefined) {
      const detail = fault?.echoKey ? `Invalid API key: ${apiKey}` : 'Invalid API key';
      return send(res, 401, JSON.stringify({ detail }));
    }

    const reply = handleApi(store, org, matched.route, matched.jobId, url.searchParams, rawBody);
    const ok = reply.status < 300;
    // Written now, sent later: a late answer carries the state as it was when the request was handled.
    const body = fault && ok ? distort(reply.body, fault) : JSON.stringify(reply.body);
    fault?.onHandled?.();
    if (fault?.answerDelayMs) await sleep(fault.answerDelayMs);
    if (fault?.answerUntil) await fault.answerUntil;
    if (fault?.drop === 'after') return void req.socket.destroy();
    send(res, reply.status, body);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent) send(res, 500, errorBody('current', 500, `Simulator bug: ${String(error)}`));
    });
  });
  await new Promise<void>((resolve) =>
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve),
  );
  const { port, address } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;

  const pace = options.paceMs ?? 0;
  const ticker = pace > 0 ? setInterval(step, pace) : undefined;
  ticker?.unref();

  return {
    url: `http://${host}:${port}${API_BASE_PATH}`,
    store,
    population,
    faults,
    requests,
    requestsTo: (route) => requests.filter((r) => r.route === route),
    peakInFlight: (route) => peaks.get(route) ?? 0,
    resetRequests() {
      requests.length = 0;
      peaks.clear();
    },
    advance(steps = 1) {
      for (let i = 0; i < steps; i++) step();
    },
    async stop() {
      clearInterval(ticker);
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
