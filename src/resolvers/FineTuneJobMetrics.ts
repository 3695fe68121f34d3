// Metrics keep the upstream's records; typed fields read the usual keys one by one, so a value
// of an unexpected type is null for that field and the rest of the entry is still shown.
import { summarizeMetrics } from '../fine-tune-jobs/metrics-summary.js';
import type { FineTuneJobMetricsResolvers, FineTuneMetricEntryResolvers } from '../generated/graphql.js';
import { readTypicalMetric } from '../upstream/records.js';

export const FineTuneJobMetrics: FineTuneJobMetricsResolvers = {
  lastCheckpointStep: (metrics) => metrics.last_checkpoint_step ?? null,
  entries: (metrics) => metrics.metrics,
  // From the page already fetched: no call of its own.
  summary: (metrics) => summarizeMetrics(metrics.metrics, metrics.last_checkpoint_step ?? null),
};

export const FineTuneMetricEntry: FineTuneMetricEntryResolvers = {
  step: (entry) => readTypicalMetric(entry, 'step'),
  loss: (entry) => readTypicalMetric(entry, 'loss'),
  evalLoss: (entry) => readTypicalMetric(entry, 'eval_loss'),
  learningRate: (entry) => readTypicalMetric(entry, 'learning_rate'),
  wallTimeSec: (entry) => readTypicalMetric(entry, 'wall_time_sec'),
  raw: (entry) => entry,
};
