// Creating, stopping and cancelling jobs so that no job is ever duplicated or lost, even when an
// answer is lost on the way back (timeout, dropped connection, 502/503/504). The API has no
// idempotency key, but a create carries an id the gateway chooses and a second create with the
// same id is a 409: so a retry is safe, and a 409 on a retry means the first attempt landed.
// Stop and cancel are retried only when reading the job back shows they did not take effect.
import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { ErrorCode, gatewayError } from '../errors.js';
import { showsEffectOf, type FineTuneJobAction } from './lifecycle.js';
import type { FineTuneApiClient } from '../upstream/client.js';
import { UpstreamError } from '../upstream/errors.js';
import type { CreateJobRequest, FineTuneJobRecord } from '../upstream/records.js';

export interface JobWriteSettings {
  /** Attempts of one write whose answer keeps getting lost, the first one included. */
  attempts: number;
  /** Upper bound of the exponential backoff between attempts. */
  backoffLimitMs: number;
}

/** Statuses from a proxy in front of the API: the request may or may not have been handled. */
const LOST_ANSWER_STATUSES: ReadonlySet<number> = new Set([502, 503, 504]);
const FIRST_BACKOFF_MS = 200;

/** The request may have been handled, but its answer never arrived. */
function answerWasLost(error: unknown): error is UpstreamError {
  if (!(error instanceof UpstreamError)) return false;
  if (error.kind === 'timeout' || error.kind === 'network') return true;
  return error.kind === 'http' && LOST_ANSWER_STATUSES.has(error.details.status ?? 0);
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
    private readonly settings: JobWriteSettings,
    private readonly logger: Logger,
  ) {}

  /** Creates the job exactly once, or fails saying so; `request.id` is already set. */
  async create(request: CreateJobRequest): Promise<FineTuneJobRecord> {
    let mayHaveLanded = false;
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.settings.attempts; attempt++) {
      if (attempt > 1) await this.backoff(attempt);
      try {
        return await this.api.createJob(request);
      } catch (error) {
        lastError = error;
        // A 409 on the first attempt is a genuine duplicate id; on a retry, it may be our own job.
        if (isConflict(error) && !mayHaveLanded) throw error;
        if (isConflict(error) || isUnreadableSuccess(error)) return this.readBackCreated(request, error);
        if (!answerWasLost(error)) {
          if (mayHaveLanded) return this.readBackCreated(request, error);
          throw withJobId(error, request.id);
        }
        mayHaveLanded = true;
        this.logger.warn(
          {
            jobId: request.id,
            attempt,
            of: this.settings.attempts,
            failure: error.kind,
            status: error.details.status,
          },
          'create: the answer was lost; the job may exist (retried with the same id, then read back)',
        );
      }
    }
    // Every answer was lost: the job exists only if one of the attempts landed.
    return this.readBackCreated(request, lastError);
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
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.settings.attempts; attempt++) {
      if (attempt > 1) await this.backoff(attempt);
      try {
        return await send();
      } catch (error) {
        lastError = error;
        const lost = answerWasLost(error);
        // A 409 after a lost answer may be our own earlier attempt having moved the job on.
        const worthReadingBack = lost || isUnreadableSuccess(error) || (isConflict(error) && mayHaveLanded);
        if (!worthReadingBack) throw error;
        const job = await this.readBack(id);
        if (job && showsEffectOf(job.status, action)) return job;
        if (!lost) throw error;
        mayHaveLanded = true;
        this.logger.warn(
          {
            jobId: id,
            action,
            attempt,
            of: this.settings.attempts,
            failure: error.kind,
            readBackStatus: job?.status ?? null,
          },
          `${action.toLowerCase()}: the answer was lost and the job does not show the change`,
        );
      }
    }
    throw lastError;
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

  private backoff(attempt: number): Promise<void> {
    const ceiling = Math.min(this.settings.backoffLimitMs, FIRST_BACKOFF_MS * 2 ** (attempt - 2));
    return sleep(ceiling * (0.5 + Math.random() / 2));
  }
}
