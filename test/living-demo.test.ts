// The demo that stays alive: the simulator's living population, on a clock the test moves. Jobs
// keep registering and running, some fail or are stopped, finished ones age out, every change
// is one the provider documents, and the same seed gives the same population. Through the
// gateway, the README's examples keep answering, and `npm start` itself runs the living demo.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MIN_RUNNING } from '../src/simulator/population.js';
import { startSimulator, type RunningSimulator, type SimulatorOptions } from '../src/simulator/server.js';
import type { SimulatedOrganization } from '../src/simulator/store.js';
import { isFineTuneJobRecord, type FineTuneJobRecord } from '../src/upstream/records.js';
import { startEntryPoint, stopEntryPoints, waitForOutput } from './entry-point-process.js';
import { ACME_KEY, expectData, startStack, type Stack } from './harness.js';
import { connect, waitUntil } from './live-client.js';

const PACE_MS = 5_000;
const START = Date.parse('2026-05-01T08:00:00.000Z');
// An hour of demo at the default pace: long after every seeded job has finished.
const HOUR = 720;

/** A living simulator on a clock of its own: `step(n)` moves the clock and the jobs together. */
async function livingSimulator(seed: number, options: SimulatorOptions = {}) {
  let now = START;
  const simulator = await startSimulator({
    paceMs: 0,
    living: { seed },
    clock: () => now,
    ...options,
  });
  return {
    simulator,
    step(steps = 1) {
      for (let i = 0; i < steps; i++) {
        now += PACE_MS;
        simulator.advance();
      }
    },
  };
}

function jobsOf(simulator: RunningSimulator, org: SimulatedOrganization): FineTuneJobRecord[] {
  return simulator.store.list(org, null);
}

function count(jobs: FineTuneJobRecord[], status: string): number {
  return jobs.filter((job) => job.status === status).length;
}

// The provider's life cycle (shared upstream README): its forward path, a stop, a cancel of
// anything in progress, and a failure of anything in progress.
const IN_PROGRESS = ['REGISTERED', 'STARTING', 'RUNNING', 'FINALIZING', 'STOPPING'];
const DOCUMENTED = new Set([
  'REGISTERED>STARTING',
  'STARTING>RUNNING',
  'RUNNING>FINALIZING',
  'FINALIZING>COMPLETED',
  'REGISTERED>STOPPING',
  'STARTING>STOPPING',
  'RUNNING>STOPPING',
  'STOPPING>STOPPED',
  ...IN_PROGRESS.map((status) => `${status}>CANCELLED`),
  ...IN_PROGRESS.map((status) => `${status}>FAILED`),
]);
const TERMINAL = new Set(['COMPLETED', 'STOPPED', 'CANCELLED', 'FAILED']);

describe('the living population, on a clock the test moves', () => {
  let living: Awaited<ReturnType<typeof livingSimulator>>;
  beforeAll(async () => {
    living = await livingSimulator(7);
  });
  afterAll(() => living.simulator.stop());

  it('has jobs STARTING and RUNNING at every moment, only documented changes, and finished jobs under the cap', () => {
    const { simulator } = living;
    const population = simulator.population!;
    const orgs = simulator.store.organizations;
    const original = new Map(orgs.map((org) => [org.uuid, new Set(jobsOf(simulator, org).map((j) => j.id))]));
    // What must never change in a record, and what was last seen of each job.
    const fixed = (job: FineTuneJobRecord) =>
      JSON.stringify([job.name, job.id, job.uuid, job.org_uuid, job.config, job.created_at]);
    const seen = new Map<
      string,
      { fixed: string; status: string; updatedAt: string; entries: number; org: string }
    >();
    const changes = new Map<string, number>();
    // Collected, then asserted once: an expect per job and moment would be most of the run time.
    const problems: string[] = [];
    const check = (ok: boolean, problem: () => string) => void (ok || problems.push(problem()));
    let agedOut = 0;
    let registered = 0;

    for (let moment = 0; moment <= HOUR; moment++) {
      if (moment > 0) living.step();
      for (const org of orgs) {
        const jobs = jobsOf(simulator, org);
        const at = `moment ${moment}, ${org.name}`;
        check(count(jobs, 'STARTING') >= 1, () => `${at}: nothing STARTING`);
        check(count(jobs, 'RUNNING') >= MIN_RUNNING, () => `${at}: ${count(jobs, 'RUNNING')} RUNNING`);
        // The seeded records stay; of the jobs born since, at most the cap are kept finished.
        check(population.agingJobs(org).length <= population.finishedCap, () => `${at}: over the cap`);
        const finished = jobs.filter((job) => TERMINAL.has(job.status)).length;
        check(
          finished <= original.get(org.uuid)!.size + population.finishedCap,
          () => `${at}: ${finished} finished`,
        );

        const ids = new Set<string>();
        for (const job of jobs) {
          ids.add(job.id);
          const shown = () => `${at}: ${JSON.stringify(job)}`;
          check(isFineTuneJobRecord(job) && job.org_uuid === org.uuid, shown);
          // Inference artifacts exist once a job completed, and only then.
          check((job.inference_config_path === null) === (job.status !== 'COMPLETED'), shown);
          const entries = simulator.store.metrics(org, job.id)!.entries.length;
          const before = seen.get(job.id);
          if (before === undefined) {
            // A job appears only as a create makes it (moment 0 is the starting population).
            if (moment > 0) {
              check(job.status === 'REGISTERED', shown);
              registered += 1;
            }
          } else {
            check(before.org === org.uuid && before.fixed === fixed(job), shown);
            check(job.updated_at >= before.updatedAt && entries >= before.entries, shown);
            if (job.status !== before.status) {
              const change = `${before.status}>${job.status}`;
              check(DOCUMENTED.has(change), () => `${at}: ${job.id} ${change}`);
              changes.set(change, (changes.get(change) ?? 0) + 1);
            }
          }
          seen.set(job.id, {
            fixed: before?.fixed ?? fixed(job),
            status: job.status,
            updatedAt: job.updated_at,
            entries,
            org: org.uuid,
          });
        }
        // A job leaves only once finished, and never one of the seeded records.
        for (const [id, last] of seen) {
          if (last.org !== org.uuid || ids.has(id)) continue;
          check(TERMINAL.has(last.status), () => `${at}: ${id} gone while ${last.status}`);
          check(!original.get(org.uuid)!.has(id), () => `${at}: seeded ${id} gone`);
          seen.delete(id);
          agedOut += 1;
        }
      }
    }

    expect(problems.slice(0, 20)).toEqual([]);
    // Over an hour of demo, every way a job ends happened, and jobs came and went.
    const endings = ['FINALIZING>COMPLETED', 'RUNNING>FAILED', 'STOPPING>STOPPED', 'RUNNING>CANCELLED'];
    for (const change of endings) expect(changes.get(change) ?? 0, change).toBeGreaterThan(0);
    expect(registered).toBeGreaterThan(HOUR / 5);
    expect(agedOut).toBeGreaterThan(HOUR / 10);
  });

  it("grows a running job's metrics from one moment to the next", () => {
    const { simulator } = living;
    for (const org of simulator.store.organizations) {
      const running = simulator.store.list(org, ['RUNNING']);
      const before = running.map((job) => {
        const metrics = simulator.store.metrics(org, job.id)!;
        return { entries: metrics.entries.length, last: metrics.lastCheckpointStep ?? 0 };
      });
      living.step();
      running.forEach((job, i) => {
        const after = simulator.store.metrics(org, job.id)!;
        expect(after.entries.length, job.id).toBe(before[i]!.entries + 1);
        expect(after.lastCheckpointStep!, job.id).toBeGreaterThan(before[i]!.last);
      });
    }
  });
});

describe('the same seed', () => {
  it('gives the same population, record for record and metric for metric; another seed another', async () => {
    const runs = await Promise.all([livingSimulator(42), livingSimulator(42), livingSimulator(43)]);
    try {
      for (const run of runs) run.step(300);
      const population = ({ simulator }: (typeof runs)[number]) =>
        simulator.store.organizations.map((org) =>
          jobsOf(simulator, org).map((job) => ({ job, metrics: simulator.store.metrics(org, job.id) })),
        );
      const [first, again, other] = runs.map(population);
      expect(again).toEqual(first);
      const ids = (p: ReturnType<typeof population> | undefined) => p!.flat().map(({ job }) => job.id);
      expect(ids(other)).not.toEqual(ids(first));
    } finally {
      await Promise.all(runs.map((run) => run.simulator.stop()));
    }
  });

  it('is off unless asked for: the default simulator keeps exactly its seeded jobs', async () => {
    const simulator = await startSimulator({ jobsPerOrganization: 3, providerExamples: false });
    try {
      const [acme] = simulator.store.organizations;
      const ids = jobsOf(simulator, acme!).map((job) => job.id);
      simulator.advance(HOUR);
      expect(simulator.population).toBeUndefined();
      expect(jobsOf(simulator, acme!).map((job) => job.id)).toEqual(ids);
      expect(count(jobsOf(simulator, acme!), 'RUNNING') + count(jobsOf(simulator, acme!), 'STARTING')).toBe(
        0,
      );
    } finally {
      await simulator.stop();
    }
  });
});

// The README's "Example queries": the filtered page of RUNNING and STARTING jobs.
const RUNNING_EXAMPLE = `query Running($statuses: [FineTuneJobStatus!]) {
  fineTuneJobs(statuses: $statuses, limit: 2) { id name status allowedActions updatedAt }
}`;
const STOP = `mutation ($id: ID!) { stopFineTuneJob(id: $id) { id status isTerminal allowedActions } }`;

interface ListedJob {
  id: string;
  status: string;
  allowedActions: string[];
}

describe('through the gateway, an hour into the demo', () => {
  let stack: Stack;
  let now = START;
  const clients: { dispose(): unknown }[] = [];
  beforeAll(async () => {
    stack = await startStack({
      simulator: { jobsPerOrganization: 24, living: { seed: 1 }, clock: () => now },
      config: { subscriptions: { pollMs: 100, activePollMs: 20 } },
    });
  });
  afterAll(() => stack.stop());
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.dispose()));
  });
  function step(steps = 1) {
    for (let i = 0; i < steps; i++) {
      now += PACE_MS;
      stack.simulator.advance();
    }
  }
  async function runningJob(): Promise<ListedJob> {
    const data = expectData<{ fineTuneJobs: ListedJob[] }>(
      await stack.query(RUNNING_EXAMPLE, { statuses: ['RUNNING'] }),
    );
    expect(data.fineTuneJobs.length).toBeGreaterThanOrEqual(1);
    return data.fineTuneJobs[0]!;
  }

  it('lists RUNNING and STARTING jobs, and stops a RUNNING one', async () => {
    step(HOUR);
    const data = expectData<{ fineTuneJobs: ListedJob[] }>(
      await stack.query(RUNNING_EXAMPLE, { statuses: ['RUNNING', 'STARTING'] }),
    );
    expect(data.fineTuneJobs).toHaveLength(2);
    for (const job of data.fineTuneJobs) {
      expect(['RUNNING', 'STARTING']).toContain(job.status);
      expect(job.allowedActions).toEqual(['STOP', 'CANCEL']);
    }
    const starting = expectData<{ fineTuneJobs: ListedJob[] }>(
      await stack.query(RUNNING_EXAMPLE, { statuses: ['STARTING'] }),
    );
    expect(starting.fineTuneJobs.length).toBeGreaterThanOrEqual(1);

    const job = await runningJob();
    const stopped = expectData<{ stopFineTuneJob: ListedJob & { isTerminal: boolean } }>(
      await stack.query(STOP, { id: job.id }),
    );
    expect(stopped.stopFineTuneJob).toEqual({
      id: job.id,
      status: 'STOPPING',
      isTerminal: false,
      allowedActions: ['CANCEL'],
    });
    step();
    const [acme] = stack.simulator.store.organizations;
    expect(stack.simulator.store.get(acme!, job.id)?.status).toBe('STOPPED');
    // And the demo goes on running.
    await runningJob();
  });

  it("shows a running job's metrics growing", async () => {
    const job = await runningJob();
    const METRICS = `query ($id: ID!) { fineTuneJob(id: $id) { metrics { lastCheckpointStep entries { step loss } } } }`;
    type Metrics = { fineTuneJob: { metrics: { lastCheckpointStep: number; entries: unknown[] } } };
    const before = expectData<Metrics>(await stack.query(METRICS, { id: job.id })).fineTuneJob.metrics;
    step();
    const after = expectData<Metrics>(await stack.query(METRICS, { id: job.id })).fineTuneJob.metrics;
    expect(after.entries).toHaveLength(before.entries.length + 1);
    expect(after.lastCheckpointStep).toBeGreaterThan(before.lastCheckpointStep);
  });

  it('sends live events over graphql-ws for a job that was already running', async () => {
    const job = await runningJob();
    const [acme] = stack.simulator.store.organizations;
    const lastStep = stack.simulator.store.metrics(acme!, job.id)!.lastCheckpointStep!;
    const ws = connect(stack.gateway.url, ACME_KEY);
    clients.push(ws);
    const updated = ws.subscribe(
      'subscription ($id: ID!) { fineTuneJobUpdated(id: $id) { id status updatedAt } }',
      { id: job.id },
    );
    // Resuming after the last step written: the next checkpoint is sent whenever the gateway polls.
    const appended = ws.subscribe(
      'subscription ($id: ID!, $afterStep: Int) { fineTuneJobMetricsAppended(id: $id, afterStep: $afterStep) { step } }',
      { id: job.id, afterStep: lastStep },
    );
    const [first] = await updated.waitForEvents(1);
    expect(first!.data!.fineTuneJobUpdated).toMatchObject({ id: job.id, status: 'RUNNING' });

    step();
    const events = await updated.waitForEvents(2);
    const [was, is] = events.map((e) => e.data!.fineTuneJobUpdated as { updatedAt: string });
    expect(is!.updatedAt > was!.updatedAt).toBe(true);
    const stepsSent = () =>
      appended.events.flatMap((e) =>
        ((e.data?.fineTuneJobMetricsAppended ?? []) as { step: number }[]).map((entry) => entry.step),
      );
    await waitUntil(() => stepsSent().length > 0 || appended.failure !== undefined || appended.completed);
    expect(stepsSent(), JSON.stringify(appended.events)).toEqual([lastStep + 200]);
  });
});

describe('npm start with nothing configured', () => {
  afterEach(() => stopEntryPoints('SIGTERM'));

  it('runs the living demo: after an hour of steps it still lists RUNNING and STARTING jobs and stops one', async () => {
    // Pace 0: the embedded simulator moves only when told, through its control endpoint.
    const main = startEntryPoint(
      { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn' },
      { config: { simulator: { paceMs: 0 } } },
    );
    await waitForOutput(main.stdout, /ready at \S+[\s\S]*demo data \(\S+\)/);
    const stdout = main.stdout();
    const gatewayUrl = /ready at (http:\/\/\S+\/graphql)/.exec(stdout)![1]!;
    const simulatorUrl = /demo data \((http:\/\/\S+)\/v0\.5\)/.exec(stdout)![1]!;

    const advanced = await fetch(`${simulatorUrl}/__simulator/advance?steps=${HOUR}`, { method: 'POST' });
    expect(advanced.status).toBe(204);

    // As the README shows it: no key, so the demo organization.
    const post = async (query: string, variables: Record<string, unknown>) => {
      const response = await fetch(gatewayUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query, variables }),
      });
      return (await response.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
    };
    const listed = await post(RUNNING_EXAMPLE, { statuses: ['RUNNING', 'STARTING'] });
    expect(listed.errors, JSON.stringify(listed)).toBeUndefined();
    const jobs = listed.data!.fineTuneJobs as ListedJob[];
    expect(jobs).toHaveLength(2);

    const running = await post(RUNNING_EXAMPLE, { statuses: ['RUNNING'] });
    const id = (running.data!.fineTuneJobs as ListedJob[])[0]!.id;
    const stopped = await post(STOP, { id });
    expect(stopped.errors, JSON.stringify(stopped)).toBeUndefined();
    expect((stopped.data!.stopFineTuneJob as ListedJob).status).toBe('STOPPING');
  });
});
