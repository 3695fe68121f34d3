import type { Resolvers } from '../generated/graphql.js';
import { DateTime } from './DateTime.js';
import { FineTuneDataset, FineTuneJob } from './FineTuneJob.js';
import { Query } from './Query.js';

export const resolvers: Resolvers = {
  DateTime,
  Query,
  FineTuneJob,
  FineTuneDataset,
};
