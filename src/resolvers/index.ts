import { JSONObjectResolver } from 'graphql-scalars';
import type { Resolvers } from '../generated/graphql.js';
import { DateTime } from './DateTime.js';
import { FineTuneDataset, FineTuneJob } from './FineTuneJob.js';
import { FineTuneJobMetrics, FineTuneMetricEntry } from './FineTuneJobMetrics.js';
import { Mutation } from './Mutation.js';
import { Query } from './Query.js';
import { Subscription } from './Subscription.js';

export const resolvers: Resolvers = {
  DateTime,
  JSONObject: JSONObjectResolver,
  Query,
  Mutation,
  Subscription,
  FineTuneJob,
  FineTuneDataset,
  FineTuneJobMetrics,
  FineTuneMetricEntry,
};
