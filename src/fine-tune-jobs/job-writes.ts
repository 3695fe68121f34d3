// Creating, stopping and cancelling jobs so that no job is ever duplicated or lost, even when an
// answer is lost on the way back (timeout, dropped connection, 502/503/504). The API has no
// idempotency key, but a create carries an id the gateway chooses and a second create with the
// same id is a 409: so a retry is safe, and a 409 on a retry means the first attempt landed.
// Stop and cancel are retried only when reading the job back shows they did not take effect.
// When to retry and how long to wait is the one retry policy's (src/upstream/retry-policy.ts).
import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { ErrorCode, gatewayError } from '../errors.js';
import { showsEffectOf, type FineTuneJobAction } from './lifecycle.js';
import type { FineTuneApiClient } from '../upstream/client.js';
import { UpstreamError } from '../upstream/errors.js';
import type { CreateJobRequest, FineTuneJobRecord } from '../upstream/records.js';
import type { FailedAttempt, RetryPolicy } from '../upstream/retry-policy.js';

/** The write may have been handled, but its answer never arrived: the policy's reading of it. */
function lostAnswer(
  error: unknown,
  retries: RetryPolicy,
): { error: UpstreamError; attempt: FailedAttempt } | undefined {
  if (!(error instanceof UpstreamError)) return undefined;
  const { attempt } = error;
  return attempt !== undefined && retries.answerWasLost(attempt) ? { error, attempt } : undefined;
}

function isConflict(error: unknown): error is UpstreamError {
  return error instanceof UpstreamError && error.kind === 'http' && error.details.status === 409;
}

/** A success status whose body could not be read: the write happened, its answer is unusable. */
function isUnreadableSuccess(error: unknown): error is UpstreamError {
  return error instanceof UpstreamError && error.kind === 'bad-response';
}

/** `ftj-<slug of the name>-<8 hex>`, the form the provider uses; at most 53 characters. */
export function generateJobId(name: string): string {
  const slug =
    name
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 40)
      .replace(/-+$/, '') || 'job';
  return `ftj-${slug}-${randomBytes(4).toString('hex')}`;
}

/** The job the upstream holds is the one this create asked for (and not another with its id). */
function isSameJob(job: FineTuneJobRecord, request: CreateJobRequest): boolean {
  const shape = (name: string, config: CreateJobRequest['config']) => ({
    name,
    model: config.model,
    datasets: config.datasets.map((d) => ({ name: d.name, split: d.split, file_ids: d.file_ids })),
  });
  return isDeepStrictEqual(shape(job.name, job.config), shape(request.name, request.config));
}

function withJobId(error: unknown, jobId: string): unknown {
  if (!(error instanceof UpstreamError)) return error;
  return new UpstreamError(error.kind, error.message, { ...error.details, jobId });
}

export class FineTuneJobWrites {
  constructor(
    private readonly api: FineTuneApiClient,
    private readonly retries: RetryPolicy,
    private readonly logger: Logger,
  ) {}

  /** Creates the job exactly once, or fails saying so; `request.id` is already set. */
  async create(request: CreateJobRequest): Promise<FineTuneJobRecord> {
    let mayHaveLanded = false;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.api.createJob(request);
      } catch (error) {
        // A 409 on the first attempt is a genuine duplicate id; on a retry, it may be our own job.
        if (isConflict(error) && !mayHaveLanded) throw error;
        if (isConflict(error) || isUnreadableSuccess(error)) return this.readBackCreated(request, error);
        const failure = lostAnswer(error, this.retries);
        if (failure === undefined) {
          if (mayHaveLanded) return this.readBackCreated(request, error);
          throw withJobId(error, request.id);
        }
        mayHaveLanded = true;
        const delay = this.retries.delayMs(failure.attempt, attempt);
        // No retry left: the job exists only if one of the attempts landed.
        if (delay === undefined) return this.readBackCreated(request, error);
        this.logger.warn(
          {
            jobId: request.id,
            attempt,
            of: this.retries.attempts,
            failure: failure.error.kind,
            status: failure.error.details.status,
          },
          'create: the answer was lost; the job may exist (retried with the same id, then read back)',
        );
        await sleep(delay);
      }
    }
  }

  /** Graceful stop (STOPPING, then STOPPED). */
  stop(id: string): Promise<FineTuneJobRecord> {
    return this.transition(id, 'STOP');
  }

  /** Immediate cancel (CANCELLED). */
  cancel(id: string): Promise<FineTuneJobRecord> {
    return this.transition(id, 'CANCEL');
  }

  private async transition(id: string, action: FineTuneJobAction): Promise<FineTuneJobRecord> {
    const send = action === 'STOP' ? () => this.api.stopJob(id) : () => this.api.cancelJob(id);
    let mayHaveLanded = false;
    for (let attempt = 1; ; attempt++) {
      try {
        return await send();
      } catch (error) {
        const lost = lostAnswer(error, this.retries);
        // A 409 after a lost answer may be our own earlier attempt having moved the job on.
        const worthReadingBack = lost || isUnreadableSuccess(error) || (isConflict(error) && mayHaveLanded);
        if (!worthReadingBack) throw error;
        const job = await this.readBack(id);
        if (job && showsEffectOf(job.status, action)) return job;
        if (!lost) throw error;
        const delay = this.retries.delayMs(lost.attempt, attempt);
        if (delay === undefined) throw error;
        mayHaveLanded = true;
        this.logger.warn(
          {
            jobId: id,
            action,
            attempt,
            of: this.retries.attempts,
            failure: lost.error.kind,
            readBackStatus: job?.status ?? null,
          },
          `${action.toLowerCase()}: the answer was lost and the job does not show the change`,
        );
        await sleep(delay);
      }
    }
  }

  /** After a create whose outcome is unknown: the job if it is there and is ours. */
  private async readBackCreated(request: CreateJobRequest, failure: unknown): Promise<FineTuneJobRecord> {
    const job = await this.readBack(request.id);
    if (job === undefined || job === null) throw withJobId(failure, request.id);
    if (!isSameJob(job, request)) {
      throw gatewayError(
        ErrorCode.CONFLICT,
        `A fine-tune job with id ${request.id} already exists with another name or configuration.`,
        { jobId: request.id },
      );
    }
    this.logger.info({ jobId: request.id }, 'create: an earlier attempt had landed; returning that job');
    return job;
  }

  /** The job as the upstream has it now: null when there is none, undefined when unreadable. */
  private async readBack(id: string): Promise<FineTuneJobRecord | null | undefined> {
    try {
      return await this.api.getJob(id);
    } catch (error) {
      this.logger.warn({ jobId: id, err: error }, 'read-back after a write failed');
      return undefined;
    }
  }
}
