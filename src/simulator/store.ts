// The simulator's state: organizations, their jobs and metrics, and the job life cycle.
// Jobs of one organization are never visible through another organization's key.
import { randomUUID } from 'node:crypto';
import { STATUS_AFTER, accepts, type FineTuneJobAction } from '../fine-tune-jobs/lifecycle.js';
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

  constructor(readonly organizations: readonly SimulatedOrganization[]) {
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

  /** Adds or replaces a job as given (seeding, tests). */
  put(
    org: SimulatedOrganization,
    record: FineTuneJobRecord,
    metrics: MetricEntry[] = [],
    totalCheckpoints = 5,
  ): void {
    this.jobs(org).set(record.id, {
      record: structuredClone(record),
      metrics: [...metrics],
      totalCheckpoints,
    });
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
    const now = timestamp();
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
    job.record.updated_at = timestamp();
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
        return this.setStatus(job, 'STARTING');
      case 'STARTING':
        return this.setStatus(job, 'RUNNING');
      case 'RUNNING': {
        job.metrics.push(checkpointEntry(job.metrics.length + 1));
        if (job.metrics.length >= job.totalCheckpoints) return this.setStatus(job, 'FINALIZING');
        job.record.updated_at = timestamp();
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
