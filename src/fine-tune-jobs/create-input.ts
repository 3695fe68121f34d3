// The create mutation's input, checked before any upstream call and turned into the upstream's
// create body. A violation is BAD_USER_INPUT naming the field (`input.datasets[0].split`), so a
// form can put the message next to the right box.
import { z } from 'zod';
import { ErrorCode, gatewayError } from '../errors.js';
import type { CreateFineTuneJobInput } from '../generated/graphql.js';
import { generateJobId } from './job-writes.js';
import type { CreateJobRequest } from '../upstream/records.js';

// Checked, not trimmed: what the client typed is what the upstream gets.
const notBlank = z.string().refine((value) => value.trim() !== '', 'must not be empty');

const datasetInput = z.object({
  name: notBlank,
  split: z.enum(['train', 'eval'], { error: 'must be `train` or `eval`' }),
  fileIds: z.array(notBlank).min(1, 'must list at least one file id'),
});

// Fields in the order a form shows them: the first violation reported is the first on screen.
const createInput = z.object({
  name: notBlank,
  // The id goes into URL paths as one segment: a `/` or a dot segment would make a job no one
  // could read, stop or cancel afterwards.
  id: z
    .string()
    .min(1, 'must be 1 to 64 characters')
    .max(64, 'must be 1 to 64 characters')
    .refine((id) => !id.includes('/') && id !== '.' && id !== '..', 'cannot contain `/` or be `.` or `..`')
    .refine(
      (id) => !/\p{Surrogate}/u.test(id),
      'must be valid Unicode text (no URL can carry a lone surrogate)',
    )
    .nullish(),
  model: notBlank,
  datasets: z.array(datasetInput).min(1, 'must list at least one data set'),
});

/** `['datasets', 0, 'split']` → `input.datasets[0].split` */
function argumentPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (shown, part) => (typeof part === 'number' ? `${shown}[${part}]` : `${shown}.${String(part)}`),
    'input',
  );
}

/** The upstream body for this input, with the id the job will have; throws BAD_USER_INPUT. */
export function createJobRequest(input: CreateFineTuneJobInput): CreateJobRequest {
  const parsed = createInput.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const argument = argumentPath(issue.path);
    throw gatewayError(ErrorCode.BAD_USER_INPUT, `${argument} ${issue.message}`, { argument });
  }
  const { id, name, model, datasets } = parsed.data;
  return {
    id: id ?? generateJobId(name),
    name,
    config: {
      model,
      datasets: datasets.map((d) => ({ name: d.name, split: d.split, file_ids: d.fileIds })),
    },
  };
}
