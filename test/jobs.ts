// Jobs the tests put straight into the simulator's store, in whatever status a test needs.
import { randomUUID } from 'node:crypto';
import type { SimulatedOrganization } from '../src/simulator/store.js';
import { timestamp } from '../src/simulator/store.js';
import type { FineTuneJobRecord } from '../src/upstream/records.js';

let counter = 0;

export function jobRecord(org: SimulatedOrganization, overrides: Partial<FineTuneJobRecord> = {}) {
  counter += 1;
  const record: FineTuneJobRecord = {
    name: `test-job-${counter}`,
    id: `ftj-test-job-${counter}-${randomUUID().slice(0, 8)}`,
    uuid: randomUUID(),
    org_uuid: org.uuid,
    status: 'RUNNING',
    config: {
      model: 'Newton::c2_4_7b_251215a172f6d7',
      datasets: [{ name: 'training-set', split: 'train', file_ids: ['file-abc123'] }],
    },
    created_at: timestamp(),
    updated_at: timestamp(),
    inference_config_path: null,
    ...overrides,
  };
  return record;
}
