// A page of training metrics in a few numbers: where the run is, its best loss, and whether it is
// still improving. Values are read like the typed fields (`readTypicalMetric`), so an entry whose
// `loss` is not a number counts as one without a loss, here as in `entries`.
import type { FineTuneMetricsSummary } from '../generated/graphql.js';
import { readTypicalMetric, type FineTuneMetricEntryRecord } from '../upstream/records.js';

/** Checkpoints with a loss needed before `improving` says anything: fewer is too early to tell. */
const IMPROVING_MIN_CHECKPOINTS = 4;
/** The most recent checkpoints the best loss must fall in to count as improving, at least. */
const RECENT_MIN_CHECKPOINTS = 3;

/** The lowest value and its entry's step; the earliest entry wins a tie (a plateau is not progress). */
interface Best {
  value: number;
  step: number | null;
  /** Its place among the entries that have the value. */
  index: number;
}

function lowest(values: { value: number; step: number | null }[]): Best | null {
  let best: Best | null = null;
  for (const [index, { value, step }] of values.entries()) {
    if (best === null || value < best.value) best = { value, step, index };
  }
  return best;
}

/**
 * The summary of `entries` (one page, oldest first). The upstream's `lastCheckpointStep` is the
 * latest step when no entry of the page has one (an empty page, say).
 */
export function summarizeMetrics(
  entries: readonly FineTuneMetricEntryRecord[],
  lastCheckpointStep: number | null,
): FineTuneMetricsSummary {
  const read = (key: 'loss' | 'eval_loss') =>
    entries.flatMap((entry) => {
      const value = readTypicalMetric(entry, key);
      return value === null ? [] : [{ value, step: readTypicalMetric(entry, 'step') }];
    });
  const losses = read('loss');
  const evalLosses = read('eval_loss');
  const steps = entries.map((entry) => readTypicalMetric(entry, 'step')).filter((step) => step !== null);
  const best = lowest(losses);
  const recent = Math.max(RECENT_MIN_CHECKPOINTS, Math.ceil(losses.length / 4));
  return {
    checkpoints: entries.length,
    latestStep: steps.at(-1) ?? lastCheckpointStep,
    latestLoss: losses.at(-1)?.value ?? null,
    bestLoss: best?.value ?? null,
    bestLossStep: best?.step ?? null,
    latestEvalLoss: evalLosses.at(-1)?.value ?? null,
    bestEvalLoss: lowest(evalLosses)?.value ?? null,
    improving:
      best === null || losses.length < IMPROVING_MIN_CHECKPOINTS
        ? null
        : best.index >= losses.length - recent,
  };
}
