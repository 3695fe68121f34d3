// The fine-tune job state machine as the provider documents it: which statuses are final, and
// which actions a job accepts in each status. The one source of truth for the gateway
// (`isTerminal`, `allowedActions`, the write read-back) and for the simulator's transitions.

/** What a client can ask a job to do after creating it. */
export type FineTuneJobAction = 'STOP' | 'CANCEL';

/** Statuses a job never leaves. */
export const TERMINAL_JOB_STATUSES: ReadonlySet<string> = new Set([
  'COMPLETED',
  'STOPPED',
  'CANCELLED',
  'FAILED',
]);

/**
 * The statuses each action is accepted from. Stop is graceful, so only a job that has not begun
 * to finish accepts it; cancel is accepted by any job still in progress. `UNKNOWN` and statuses
 * the gateway has never seen accept nothing: the gateway cannot promise what the API would do.
 */
const ACCEPTED_FROM: Record<FineTuneJobAction, ReadonlySet<string>> = {
  STOP: new Set(['REGISTERED', 'STARTING', 'RUNNING']),
  CANCEL: new Set(['REGISTERED', 'STARTING', 'RUNNING', 'FINALIZING', 'STOPPING']),
};

/** The status an accepted action moves the job to at once. */
export const STATUS_AFTER: Record<FineTuneJobAction, string> = {
  STOP: 'STOPPING',
  CANCEL: 'CANCELLED',
};

/** Statuses that show an action has taken effect (a stop moves on from STOPPING by itself). */
const EFFECT_SHOWN_BY: Record<FineTuneJobAction, ReadonlySet<string>> = {
  STOP: new Set(['STOPPING', 'STOPPED']),
  CANCEL: new Set(['CANCELLED']),
};

const ACTIONS: readonly FineTuneJobAction[] = ['STOP', 'CANCEL'];

export function isTerminal(status: string): boolean {
  return TERMINAL_JOB_STATUSES.has(status);
}

export function accepts(status: string, action: FineTuneJobAction): boolean {
  return ACCEPTED_FROM[action].has(status);
}

/** The actions a job in this status accepts, in a stable order. */
export function allowedActions(status: string): FineTuneJobAction[] {
  return ACTIONS.filter((action) => accepts(status, action));
}

/** True when a job in this status shows that `action` was applied (used to read back a write). */
export function showsEffectOf(status: string, action: FineTuneJobAction): boolean {
  return EFFECT_SHOWN_BY[action].has(status);
}
