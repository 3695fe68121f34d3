// Demo data: two organizations, the provider's own example records, and generated jobs in
// every status, so a fresh `npm start` has something to look at (population.ts keeps it moving).
import getJobExample from './provider-examples/get-job.response.json' with { type: 'json' };
import jobMetricsExample from './provider-examples/job-metrics.response.json' with { type: 'json' };
import createJobAltExample from './provider-examples/create-job.response-alt.json' with { type: 'json' };
import type { FineTuneJobRecord } from '../upstream/records.js';
import { checkpointEntry, timestamp, type SimulatedOrganization, type SimulatorStore } from './store.js';

/** The organizations the simulator knows, with their demo keys. */
export const DEMO_ORGANIZATIONS: SimulatedOrganization[] = [
  { name: 'acme', uuid: '0a1b2c3d-4e5f-6789-abcd-ef0123456789', apiKeys: ['sim-acme-key'] },
  { name: 'globex', uuid: 'org_2wh4zfagp480wbt3nhm8tcqw6z', apiKeys: ['sim-globex-key'] },
];

/** The key `npm start` uses for clients that send none. */
export const DEMO_API_KEY = 'sim-acme-key';

export const SUBJECTS = [
  'gait',
  'vibration',
  'hvac',
  'forklift',
  'pump',
  'turbine',
  'conveyor',
  'door-sensor',
];
export const TASKS = ['anomaly', 'activity', 'forecast', 'classifier', 'summary'];
export const MODELS = ['Newton::c2_4_7b_251215a172f6d7', 'Newton::c2_3_1b_250930e81b22c4'];
// A spread over the whole life cycle, in-progress statuses first so the demo moves.
const STATUS_CYCLE = [
  'RUNNING',
  'REGISTERED',
  'COMPLETED',
  'STARTING',
  'FAILED',
  'COMPLETED',
  'STOPPED',
  'CANCELLED',
  'FINALIZING',
  'COMPLETED',
];

/** A small deterministic generator, so seeded data is the same on every run. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function hex(random: () => number, length: number): string {
  let out = '';
  while (out.length < length) out += Math.floor(random() * 16).toString(16);
  return out;
}

/**
 * A job record as the upstream writes one, its uuid and file ids drawn from `random` (in this
 * order: the seeded demo data stays the same from one run to the next).
 */
export function generatedJob(
  random: () => number,
  org: SimulatedOrganization,
  job: {
    name: string;
    id: string;
    status: FineTuneJobRecord['status'];
    model: string;
    created: Date;
    updated: Date;
    /** File ids of the training set (the evaluation set has one). */
    trainingFiles: number;
  },
): FineTuneJobRecord {
  const { name, id, status } = job;
  return {
    name,
    id,
    uuid: `${hex(random, 8)}-${hex(random, 4)}-4${hex(random, 3)}-a${hex(random, 3)}-${hex(random, 12)}`,
    org_uuid: org.uuid,
    status,
    config: {
      model: job.model,
      datasets: [
        {
          name: `${name}-train`,
          split: 'train',
          file_ids: Array.from({ length: job.trainingFiles }, () => `file-${hex(random, 6)}`),
        },
        { name: `${name}-eval`, split: 'eval', file_ids: [`file-${hex(random, 6)}`] },
      ],
    },
    created_at: timestamp(job.created),
    updated_at: timestamp(job.updated),
    inference_config_path: status === 'COMPLETED' ? `s3://atai-finetune/inference-configs/${id}.yaml` : null,
  };
}

export interface SeedOptions {
  /** Generated jobs per organization, besides the provider's examples. */
  jobsPerOrganization: number;
  /** Include the provider's example records (acme: get-job, globex: create-job alt). */
  providerExamples: boolean;
}

export function seedDemoData(store: SimulatorStore, options: SeedOptions): void {
  const [acme, globex] = store.organizations;
  if (options.providerExamples && acme && globex) {
    store.put(
      acme,
      { ...(getJobExample as FineTuneJobRecord), org_uuid: acme.uuid },
      jobMetricsExample.metrics,
      3,
    );
    store.put(globex, { ...(createJobAltExample as FineTuneJobRecord), org_uuid: globex.uuid });
  }

  const now = store.now().getTime();
  store.organizations.forEach((org, orgIndex) => {
    const random = prng(1000 + orgIndex);
    for (let i = 0; i < options.jobsPerOrganization; i++) {
      const name = `${SUBJECTS[i % SUBJECTS.length]}-${TASKS[(i * 7 + orgIndex) % TASKS.length]}-v${1 + (i % 4)}`;
      const status = STATUS_CYCLE[i % STATUS_CYCLE.length]!;
      const created = new Date(now - (i + 1) * 3_600_000 - Math.floor(random() * 3_000_000));
      const updated = new Date(created.getTime() + Math.floor(random() * 3_000_000));
      const id = `ftj-${name}-${hex(random, 8)}`;
      const record = generatedJob(random, org, {
        name,
        id,
        status,
        model: MODELS[i % MODELS.length]!,
        created,
        updated,
        trainingFiles: 2,
      });
      // Jobs that have trained for a while already have checkpoints; running ones will write more.
      const checkpoints = ['RUNNING', 'FINALIZING', 'COMPLETED', 'STOPPED'].includes(status)
        ? 2 + (i % 3)
        : 0;
      const metrics = Array.from({ length: checkpoints }, (_, c) => checkpointEntry(c + 1));
      store.put(org, record, metrics, checkpoints + 4 + (i % 5));
    }
  });
}
