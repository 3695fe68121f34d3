// FineTuneJobMetrics.summary over HTTP against the simulator, at the default limits: the numbers
// an assistant asks for ("latest step and loss, best loss, still improving?") in one operation,
// computed from the page the metrics call already fetched.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { expectData, startStack, type Stack } from './harness.js';
import { jobRecord } from './jobs.js';

interface Summary {
  checkpoints: number;
  latestStep: number | null;
  latestLoss: number | null;
  bestLoss: number | null;
  bestLossStep: number | null;
  latestEvalLoss: number | null;
  bestEvalLoss: number | null;
  improving: boolean | null;
}
interface Entry {
  step: number | null;
  loss: number | null;
  evalLoss: number | null;
}
interface Metrics {
  lastCheckpointStep: number | null;
  entries: Entry[];
  summary: Summary;
}

const SUMMARY =
  'checkpoints latestStep latestLoss bestLoss bestLossStep latestEvalLoss bestEvalLoss improving';
const EXAMPLE_JOB = 'ftj-my-finetune-run-3de60a5c';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.stop());
beforeEach(() => stack.simulator.resetRequests());

const acme = () => stack.simulator.store.organizations[0]!;

async function metricsOf(id: string, page = ''): Promise<Metrics> {
  const data = expectData(
    await stack.query<{ fineTuneJob: { metrics: Metrics } }>(
      `query { fineTuneJob(id: "${id}") { metrics${page} { lastCheckpointStep entries { step loss evalLoss } summary { ${SUMMARY} } } } }`,
    ),
  );
  return data.fineTuneJob.metrics;
}

/** The summary's rule written out over the typed entries, independently of the gateway's code. */
function expectedSummary({ lastCheckpointStep, entries }: Metrics): Summary {
  const withLoss = entries.filter((e) => e.loss !== null);
  const withEvalLoss = entries.filter((e) => e.evalLoss !== null);
  const losses = withLoss.map((e) => e.loss!);
  const bestLoss = losses.length ? Math.min(...losses) : null;
  const bestAt = losses.indexOf(bestLoss!);
  const recent = Math.max(3, Math.ceil(losses.length / 4));
  return {
    checkpoints: entries.length,
    latestStep: entries.findLast((e) => e.step !== null)?.step ?? lastCheckpointStep,
    latestLoss: withLoss.at(-1)?.loss ?? null,
    bestLoss,
    bestLossStep: bestAt >= 0 ? withLoss[bestAt]!.step : null,
    latestEvalLoss: withEvalLoss.at(-1)?.evalLoss ?? null,
    bestEvalLoss: withEvalLoss.length ? Math.min(...withEvalLoss.map((e) => e.evalLoss!)) : null,
    improving: losses.length < 4 ? null : bestAt >= losses.length - recent,
  };
}

/** A RUNNING job whose checkpoints have these training losses, 100 steps apart. */
function jobWithLosses(losses: unknown[]): string {
  const job = jobRecord(acme(), { status: 'RUNNING' });
  const entries = losses.map((loss, i) => ({ step: (i + 1) * 100, loss }));
  stack.simulator.store.put(acme(), job, entries, losses.length + 5);
  return job.id;
}

describe('metrics summary', () => {
  it('summarizes the provider’s example: three checkpoints are too early to tell', async () => {
    const metrics = await metricsOf(EXAMPLE_JOB);
    expect(metrics.summary).toEqual({
      checkpoints: 3,
      latestStep: 600,
      latestLoss: 1.187,
      bestLoss: 1.187,
      bestLossStep: 600,
      latestEvalLoss: 1.298,
      bestEvalLoss: 1.298,
      improving: null,
    });
    expect(stack.simulator.requestsTo('getJobMetrics')).toHaveLength(1);
  });

  it('equals what the same response’s entries say, for every seeded job', async () => {
    const jobs = stack.simulator.store.list(acme(), null);
    expect(jobs.length).toBeGreaterThan(10);
    const seen = new Set<boolean | null>();
    for (const job of jobs) {
      const metrics = await metricsOf(job.id);
      expect(metrics.summary).toEqual(expectedSummary(metrics));
      seen.add(metrics.summary.improving);
    }
    // The seed has jobs of 0 to 4 checkpoints, the simulator's losses falling: null and true.
    expect(seen).toEqual(new Set([null, true]));
    expect(stack.simulator.requestsTo('getJobMetrics')).toHaveLength(jobs.length);
  });

  it('says improving for checkpoints the simulator writes as the job trains', async () => {
    const job = jobRecord(acme(), { status: 'RUNNING' });
    stack.simulator.store.put(acme(), job, [], 20);
    stack.simulator.advance(8);
    const metrics = await metricsOf(job.id);
    expect(metrics.summary).toMatchObject({
      checkpoints: 8,
      latestStep: metrics.entries[7]!.step,
      improving: true,
    });
    expect(metrics.summary).toEqual(expectedSummary(metrics));
  });

  it('gives zero checkpoints and nulls for a job that has none yet', async () => {
    const job = jobRecord(acme(), { status: 'QUEUED' });
    stack.simulator.store.put(acme(), job);
    expect((await metricsOf(job.id)).summary).toEqual({
      checkpoints: 0,
      latestStep: null,
      latestLoss: null,
      bestLoss: null,
      bestLossStep: null,
      latestEvalLoss: null,
      bestEvalLoss: null,
      improving: null,
    });
  });

  it.each([
    ['falling', true, [2.0, 1.6, 1.3, 1.1]],
    ['falling, then rising', false, [2.0, 1.5, 1.2, 1.1, 1.3, 1.6, 2.2, 3.0]],
    ['best in the first of four', false, [1.0, 1.2, 1.3, 1.4]],
    ['best in the latest 3 of 12', true, [...Array<number>(9).fill(2), 1.0, 1.1, 1.2]],
    ['best just before the latest 3 of 12', false, [...Array<number>(8).fill(2), 1.0, 1.1, 1.2, 1.3]],
    ['best in the latest quarter (4) of 16', true, [...Array<number>(12).fill(2), 1.0, 1.1, 1.2, 1.3]],
    ['best reached before a plateau at it', false, [2.0, 1.0, 1.5, 1.0, 1.0, 1.0, 1.0, 1.0]],
    ['only three losses', null, [2.0, 1.6, 1.3]],
  ])('%s: improving is %s', async (_case, improving, losses) => {
    const metrics = await metricsOf(jobWithLosses(losses));
    expect(metrics.summary.improving).toBe(improving);
    expect(metrics.summary).toEqual(expectedSummary(metrics));
  });

  it('ignores values that are not numbers, as the typed fields do', async () => {
    const job = jobRecord(acme(), { status: 'RUNNING' });
    const raw = [
      { step: 100, loss: '0.1', eval_loss: 2.1 },
      { step: 200, loss: 1.8, eval_loss: '0.2' },
      { step: 300, loss: 1.6, eval_loss: 1.9 },
      { step: 400, loss: null, eval_loss: null },
      { step: '500', loss: 1.4, eval_loss: { value: 0.3 } },
    ];
    stack.simulator.store.put(acme(), job, raw, 10);
    const metrics = await metricsOf(job.id);
    expect(metrics.summary).toEqual({
      checkpoints: 5,
      latestStep: 400,
      latestLoss: 1.4,
      bestLoss: 1.4,
      // The entry of the best loss has no step of the Int type.
      bestLossStep: null,
      latestEvalLoss: 1.9,
      bestEvalLoss: 1.9,
      // Three entries with a loss: too early to tell.
      improving: null,
    });
    expect(metrics.summary).toEqual(expectedSummary(metrics));
  });

  it('summarizes the requested page only; an empty page takes lastCheckpointStep', async () => {
    const id = jobWithLosses([2.0, 1.5, 1.2, 1.1, 1.3, 1.6]);
    const page = await metricsOf(id, '(limit: 2, offset: 1)');
    expect(page.summary).toMatchObject({ checkpoints: 2, latestStep: 300, bestLoss: 1.2, improving: null });
    const empty = await metricsOf(id, '(limit: 0)');
    expect(empty.summary).toMatchObject({ checkpoints: 0, latestStep: 600, latestLoss: null });
    expect(empty.lastCheckpointStep).toBe(600);
  });

  it('answers the assistant’s question in one operation, with no upstream call of its own', async () => {
    const id = jobWithLosses([2.0, 1.6, 1.3, 1.1]);
    const response = await stack.query<{ fineTuneJob: { status: string; metrics: { summary: Summary } } }>(
      `query { fineTuneJob(id: "${id}") { id name status metrics { lastCheckpointStep summary { ${SUMMARY} } } } }`,
    );
    // Within the default limits, and the job and its metrics: two calls.
    expect(expectData(response).fineTuneJob.metrics.summary).toMatchObject({
      latestStep: 400,
      latestLoss: 1.1,
      bestLoss: 1.1,
      improving: true,
    });
    expect(stack.simulator.requests.map((r) => r.route).sort()).toEqual(['getJob', 'getJobMetrics']);
    // Asked with the entries, still one metrics call.
    stack.simulator.resetRequests();
    await metricsOf(id);
    expect(stack.simulator.requestsTo('getJobMetrics')).toHaveLength(1);
  });
});

describe('the cost of a summary', () => {
  it("is the page's: twenty jobs with their summaries fit the default limits, one metrics call each", async () => {
    const response = await stack.query<{ fineTuneJobs: { metrics: { summary: Summary } }[] }>(
      `query { fineTuneJobs(limit: 20) { id metrics { summary { ${SUMMARY} } } } }`,
    );
    const jobs = expectData(response).fineTuneJobs;
    expect(jobs.length).toBeGreaterThan(1);
    expect(stack.simulator.requestsTo('getJobMetrics')).toHaveLength(jobs.length);
    // Selecting the summary's fields costs nothing beyond the page they are computed from.
    const priced = await startStack({ config: { limits: { maxCost: 1 } } });
    try {
      const costOf = async (selection: string) => {
        const refused = await priced.query(`query { fineTuneJob(id: "x") { metrics { ${selection} } } }`);
        return refused.errors![0]!.extensions!.cost;
      };
      expect(await costOf(`summary { ${SUMMARY} }`)).toBe(await costOf('lastCheckpointStep'));
    } finally {
      await priced.stop();
    }
  });
});
