// Subscriptions: `subscribe` opens a live stream shared through the pollers; `resolve` runs once
// per event, with fresh loaders, and turns an error event into the GraphQL error it carries.
import type { GatewayContext } from '../context.js';
import type {
  SubscriptionFineTuneJobMetricsAppendedArgs,
  SubscriptionFineTuneJobsChangedArgs,
  SubscriptionFineTuneJobUpdatedArgs,
  SubscriptionResolvers,
} from '../generated/graphql.js';
import type { LiveEvent } from '../subscriptions/live-jobs.js';
import { checkJobId } from './arguments.js';

/** A subscription field over one of the live streams. */
function live<TArgs, TValue>(
  open: (args: TArgs, context: GatewayContext) => AsyncIterable<LiveEvent<TValue>>,
) {
  return {
    subscribe: (_parent: unknown, args: TArgs, context: GatewayContext) => open(args, context),
    resolve(event: LiveEvent<TValue>, _args: TArgs, context: GatewayContext): TValue {
      context.operation.startSubscriptionEvent();
      if ('error' in event) throw event.error;
      return event.value;
    },
  };
}

export const Subscription: SubscriptionResolvers = {
  fineTuneJobUpdated: live(({ id }: SubscriptionFineTuneJobUpdatedArgs, { liveJobs }) => {
    checkJobId(id);
    return liveJobs.jobUpdates(id);
  }),

  fineTuneJobsChanged: live(({ statuses }: SubscriptionFineTuneJobsChangedArgs, { liveJobs }) =>
    liveJobs.listChanges(statuses ?? null),
  ),

  fineTuneJobMetricsAppended: live(
    ({ id, afterStep }: SubscriptionFineTuneJobMetricsAppendedArgs, { liveJobs }) => {
      checkJobId(id);
      return liveJobs.metricsAppended(id, afterStep ?? null);
    },
  ),
};
