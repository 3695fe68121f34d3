// The simulator's state: organizations, their jobs and metrics, and the job life cycle.
// Jobs of one organization are never visible through another organization's key.
import { randomUUID } from 'node:crypto';
import { STATUS_AFTER, accepts, isTerminal, type FineTuneJobAction } from '../fine-tune-jobs/lifecycle.js';
import type { FineTuneJobRecord } from '../upstream/records.js';

export interface SimulatedOrganization {
  /** Short name used by tests and the demo, e.g. `acme`. */
  name: string;
  uuid: string;
  apiKeys: string[];
}

export type MetricEntry = Record<string, unknown>;

interface StoredJob {
  record: FineTuneJobRecord;
  metrics: MetricEntry[];
  /** Checkpoints a RUNNING job writes before it moves on to FINALIZING. */
  totalCheckpoints: number;
  /** Steps a job waits in REGISTERED and in STARTING (a queue, then provisioning); 1 by default. */
  dwell: { REGISTERED: number; STARTING: number };
  /** Steps spent in the current status, for the dwell. */
  stepsInStatus: number;
}

/** A job as the simulator's life cycle sees it (read-only). */
export interface JobProgress {
  record: Readonly<FineTuneJobRecord>;
  /** Steps before the job's status moves on by itself; Infinity once terminal. */
  stepsLeft: number;
}

export interface PutOptions {
  /** Steps in REGISTERED and in STARTING before moving on (1 each by default). */
  dwell?: Partial<StoredJob['dwell']>;
}

export type TransitionResult =
  { ok: true; record: FineTuneJobRecord } | { ok: false; reason: 'not-found' | 'conflict'; status?: string };

const CHECKPOINT_EVERY = 200;

/** `2026-04-27T14:32:18.421000Z`: the provider writes microseconds. */
export function timestamp(date: Date = new Date()): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

/** The metrics a training runner writes at its n-th checkpoint: a loss that falls. */
export function checkpointEntry(n: number): MetricEntry {
  const loss = 2.4 * Math.exp(-0.35 * n) + 0.9;
  return {
    step: n * CHECKPOINT_EVERY,
    loss: Number(loss.toFixed(3)),
    eval_loss: Number((loss * 1.06).toFixed(3)),
    learning_rate: Number((0.0002 * 0.9 ** (n - 1)).toFixed(6)),
    wall_time_sec: Number((n * 311.7).toFixed(1)),
  };
}

export class SimulatorStore {
  private readonly orgsByKey = new Map<string, SimulatedOrganization>();
  private readonly jobsByOrg = new Map<string, Map<string, StoredJob>>();

  /**
   * @param clock milliseconds since the epoch for every timestamp the store writes: tests pass
   * their own, so records (and a seeded population) are the same on every run.
   */
  constructor(
    readonly organizations: readonly SimulatedOrganization[],
    private readonly clock: () => number = Date.now,
  ) {
    for (const org of organizations) {
      for (const key of org.apiKeys) this.orgsByKey.set(key, org);
      this.jobsByOrg.set(org.uuid, new Map());
    }
  }

  organizationForKey(apiKey: string): SimulatedOrganization | undefined {
    return this.orgsByKey.get(apiKey);
  }

  private jobs(org: SimulatedOrganization): Map<string, StoredJob> {
    return this.jobsByOrg.get(org.uuid)!;
  }

  /** The simulator's time: what `created_at` and `updated_at` are written from. */
  now(): Date {
    return new Date(this.clock());
  }

  /** Adds or replaces a job as given (seeding, tests). */
  put(
    org: SimulatedOrganization,
    record: FineTuneJobRecord,
    metrics: MetricEntry[] = [],
    totalCheckpoints = 5,
    options: PutOptions = {},
  ): void {
    this.jobs(org).set(record.id, {
      record: structuredClone(record),
      metrics: [...metrics],
      totalCheckpoints,
      dwell: { REGISTERED: 1, STARTING: 1, ...options.dwell },
      stepsInStatus: 0,
    });
  }

  /** Forgets a job (a finished one aging out). */
  remove(org: SimulatedOrganization, id: string): boolean {
    return this.jobs(org).delete(id);
  }

  /** Every job of the organization with the steps it has left in its status, in insertion order. */
  progress(org: SimulatedOrganization): JobProgress[] {
    return [...this.jobs(org).values()].map((job) => ({ record: job.record, stepsLeft: stepsLeft(job) }));
  }

  /**
   * Sets the steps before a REGISTERED or STARTING job moves on, or the checkpoints a RUNNING job
   * still writes; other statuses move on at the next step whatever is asked.
   */
  schedule(org: SimulatedOrganization, id: string, steps: number): void {
    const job = this.jobs(org).get(id);
    if (!job) return;
    const status = job.record.status;
    if (status === 'REGISTERED' || status === 'STARTING') job.dwell[status] = job.stepsInStatus + steps;
    else if (status === 'RUNNING') job.totalCheckpoints = job.metrics.length + steps;
  }

  /** Newest first, like the provider. */
  list(org: SimulatedOrganization, statuses: readonly string[] | null): FineTuneJobRecord[] {
    const all = [...this.jobs(org).values()].map((j) => j.record);
    const filtered = statuses === null ? all : all.filter((r) => statuses.includes(r.status));
    return filtered.sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0));
  }

  get(org: SimulatedOrganization, id: string): FineTuneJobRecord | undefined {
    return this.jobs(org).get(id)?.record;
  }

  metrics(
    org: SimulatedOrganization,
    id: string,
  ): { lastCheckpointStep: number | undefined; entries: MetricEntry[] } | undefined {
    const job = this.jobs(org).get(id);
    if (!job) return undefined;
    const last = job.metrics.at(-1)?.step;
    return { lastCheckpointStep: typeof last === 'number' ? last : undefined, entries: job.metrics };
  }

  /** Creates a REGISTERED job; false when the id is taken in this organization. */
  create(
    org: SimulatedOrganization,
    input: { id: string; name: string; config: FineTuneJobRecord['config'] },
  ): FineTuneJobRecord | false {
    if (this.jobs(org).has(input.id)) return false;
    const now = timestamp(this.now());
    const record: FineTuneJobRecord = {
      name: input.name,
      id: input.id,
      uuid: randomUUID(),
      org_uuid: org.uuid,
      status: 'REGISTERED',
      config: input.config,
      created_at: now,
      updated_at: now,
      inference_config_path: null,
    };
    this.put(org, record);
    return structuredClone(record);
  }

  /** Graceful stop: STOPPING now, STOPPED on the next tick. */
  stop(org: SimulatedOrganization, id: string): TransitionResult {
    return this.apply(org, id, 'STOP');
  }

  /** Immediate cancel. */
  cancel(org: SimulatedOrganization, id: string): TransitionResult {
    return this.apply(org, id, 'CANCEL');
  }

  /** The provider's side giving up on a job in progress (out of memory, bad data): FAILED. */
  fail(org: SimulatedOrganization, id: string): TransitionResult {
    const job = this.jobs(org).get(id);
    if (!job) return { ok: false, reason: 'not-found' };
    if (isTerminal(job.record.status)) return { ok: false, reason: 'conflict', status: job.record.status };
    this.setStatus(job, 'FAILED');
    return { ok: true, record: structuredClone(job.record) };
  }

  // The rules are the gateway's own state machine, so `allowedActions` and the API never disagree.
  private apply(org: SimulatedOrganization, id: string, action: FineTuneJobAction): TransitionResult {
    const job = this.jobs(org).get(id);
    if (!job) return { ok: false, reason: 'not-found' };
    if (!accepts(job.record.status, action)) {
      return { ok: false, reason: 'conflict', status: job.record.status };
    }
    this.setStatus(job, STATUS_AFTER[action]);
    return { ok: true, record: structuredClone(job.record) };
  }

  private setStatus(job: StoredJob, status: string): void {
    job.record.status = status;
    job.record.updated_at = timestamp(this.now());
    job.stepsInStatus = 0;
  }

  /** Moves every job in progress one step along its life cycle. */
  advance(): void {
    for (const jobs of this.jobsByOrg.values()) {
      for (const job of jobs.values()) this.advanceJob(job);
    }
  }

  private advanceJob(job: StoredJob): void {
    switch (job.record.status) {
      case 'REGISTERED':
      case 'STARTING': {
        // Waiting changes nothing a client sees, not even updated_at.
        job.stepsInStatus += 1;
        if (job.stepsInStatus < job.dwell[job.record.status]) return;
        return this.setStatus(job, job.record.status === 'REGISTERED' ? 'STARTING' : 'RUNNING');
      }
      case 'RUNNING': {
        job.metrics.push(checkpointEntry(job.metrics.length + 1));
        if (job.metrics.length >= job.totalCheckpoints) return this.setStatus(job, 'FINALIZING');
        job.record.updated_at = timestamp(this.now());
        return;
      }
      case 'FINALIZING':
        job.record.inference_config_path = `s3://atai-finetune/inference-configs/${job.record.id}.yaml`;
        return this.setStatus(job, 'COMPLETED');
      case 'STOPPING':
        return this.setStatus(job, 'STOPPED');
    }
  }
}

function stepsLeft(job: StoredJob): number {
  const status = job.record.status;
  if (status === 'REGISTERED' || status === 'STARTING') {
    return Math.max(1, job.dwell[status] - job.stepsInStatus);
  }
  if (status === 'RUNNING') return Math.max(1, job.totalCheckpoints - job.metrics.length);
  if (status === 'FINALIZING' || status === 'STOPPING') return 1;
  // Terminal, or a status the life cycle does not move (UNKNOWN, drift put in by a test).
  return Infinity;
}
