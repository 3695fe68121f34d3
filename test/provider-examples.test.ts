// The provider's own example records (copied byte for byte into src/simulator/provider-examples)
// come out of the gateway field for field.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import cancelJob from '../src/simulator/provider-examples/cancel-job.response.json' with { type: 'json' };
import createJobAlt from '../src/simulator/provider-examples/create-job.response-alt.json' with { type: 'json' };
import createJob from '../src/simulator/provider-examples/create-job.response.json' with { type: 'json' };
import getJob from '../src/simulator/provider-examples/get-job.response.json' with { type: 'json' };
import listJobs from '../src/simulator/provider-examples/list-jobs.response.json' with { type: 'json' };
import stopJob from '../src/simulator/provider-examples/stop-job.response.json' with { type: 'json' };
import type { FineTuneJobRecord } from '../src/upstream/records.js';
import { ACME_KEY, GLOBEX_KEY, expectData, startStack, type Stack } from './harness.js';

const ALL_FIELDS = `
  id name uuid orgUuid status upstreamStatus isTerminal
  config { model datasets { name split fileIds } }
  createdAt updatedAt inferenceConfigPath
`;

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ simulator: { jobsPerOrganization: 0, providerExamples: false } });
});
afterAll(() => stack.stop());

function organizationOf(record: FineTuneJobRecord) {
  return stack.simulator.store.organizations.find((o) => o.uuid === record.org_uuid)!;
}

describe('provider example records', () => {
  it('maps the get-job example field for field', async () => {
    stack.simulator.store.put(organizationOf(getJob), getJob);
    const data = expectData(
      await stack.query(`query { fineTuneJob(id: "ftj-my-finetune-run-3de60a5c") { ${ALL_FIELDS} } }`),
    );
    expect(data).toEqual({
      fineTuneJob: {
        id: 'ftj-my-finetune-run-3de60a5c',
        name: 'my-finetune-run',
        uuid: '8f2c1e5a-7b3d-4d9e-9c1a-2f5b7d8e4a6c',
        orgUuid: '0a1b2c3d-4e5f-6789-abcd-ef0123456789',
        status: 'COMPLETED',
        upstreamStatus: 'COMPLETED',
        isTerminal: true,
        config: {
          model: 'Newton::c2_4_7b_251215a172f6d7',
          datasets: [{ name: 'training-set', split: 'train', fileIds: ['file-abc123'] }],
        },
        createdAt: '2026-04-27T14:32:18.421000Z',
        updatedAt: '2026-04-27T15:48:05.910000Z',
        inferenceConfigPath: 's3://atai-finetune/inference-configs/ftj-my-finetune-run-3de60a5c.yaml',
      },
    });
  });

  it('maps the list-jobs example through fineTuneJobs', async () => {
    const [running] = listJobs as FineTuneJobRecord[];
    stack.simulator.store.put(organizationOf(running!), running!);
    const data = expectData(
      await stack.query<{ fineTuneJobs: unknown[] }>(
        `query { fineTuneJobs(statuses: [RUNNING]) { ${ALL_FIELDS} } }`,
      ),
    );
    expect(data.fineTuneJobs).toEqual([
      {
        id: 'ftj-my-finetune-run-3de60a5c',
        name: 'my-finetune-run',
        uuid: '8f2c1e5a-7b3d-4d9e-9c1a-2f5b7d8e4a6c',
        orgUuid: '0a1b2c3d-4e5f-6789-abcd-ef0123456789',
        status: 'RUNNING',
        upstreamStatus: 'RUNNING',
        isTerminal: false,
        config: {
          model: 'Newton::c2_4_7b_251215a172f6d7',
          datasets: [{ name: 'training-set', split: 'train', fileIds: ['file-abc123'] }],
        },
        createdAt: '2026-04-27T14:32:18.421000Z',
        updatedAt: '2026-04-27T14:35:02.118000Z',
        inferenceConfigPath: null,
      },
    ]);
  });

  // The other published records, each checked against the documented field renames.
  const examples: [string, FineTuneJobRecord, string][] = [
    ['create-job', createJob, ACME_KEY],
    ['create-job (alternative id forms)', createJobAlt, GLOBEX_KEY],
    ['stop-job', stopJob, ACME_KEY],
    ['cancel-job', cancelJob, ACME_KEY],
  ];
  it.each(examples)('maps the %s example field for field', async (_name, record, apiKey) => {
    stack.simulator.store.put(organizationOf(record), record);
    const data = expectData(
      await stack.query(`query { fineTuneJob(id: "${record.id}") { ${ALL_FIELDS} } }`, {}, { apiKey }),
    );
    expect(data).toEqual({
      fineTuneJob: {
        id: record.id,
        name: record.name,
        uuid: record.uuid,
        orgUuid: record.org_uuid,
        status: record.status,
        upstreamStatus: record.status,
        isTerminal: ['COMPLETED', 'STOPPED', 'CANCELLED', 'FAILED'].includes(record.status),
        config: {
          model: record.config.model,
          datasets: record.config.datasets.map((d) => ({
            name: d.name,
            split: d.split,
            fileIds: d.file_ids,
          })),
        },
        createdAt: record.created_at,
        updatedAt: record.updated_at,
        inferenceConfigPath: record.inference_config_path,
      },
    });
  });
});
