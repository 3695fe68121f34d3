// The living demo: jobs that keep coming and going, so a demo that runs for hours always has jobs
// STARTING and RUNNING, with metrics growing. After every job has moved one step
// (SimulatorStore.advance), each step new jobs register, a few running ones fail or are stopped or
// cancelled by someone else, and finished jobs beyond a cap age out. Every choice comes from a
// seeded generator and every timestamp from the store's clock, so a test sees the same
// population on every run. Only the provider's transitions are used (shared upstream README).
import { isTerminal } from '../fine-tune-jobs/lifecycle.js';
import type { FineTuneJobRecord } from '../upstream/records.js';
import { MODELS, SUBJECTS, TASKS, generatedJob, hex, prng } from './seed.js';
import { checkpointEntry, type SimulatedOrganization, type SimulatorStore } from './store.js';

export interface LivingOptions {
  /** Seeds the generator; the same seed (and clock) gives the same population. Default 1. */
  seed?: number;
  /**
   * Finished jobs an organization keeps besides the ones there at the start (the seeded records
   * the docs name, which stay); beyond it the oldest finished go. Default 30.
   */
  finishedCap?: number;
}

export const DEFAULT_FINISHED_CAP = 30;
/** RUNNING jobs per organization at every step, at least (a client's own stops aside). */
export const MIN_RUNNING = 2;

// Chances per step: a new job registers; a running job fails, is stopped or is cancelled.
const ARRIVAL = 0.25;
const FAILURE = 0.02;
const STOP = 0.015;
const CANCEL = 0.01;

type Random = () => number;

function pick<T>(random: Random, items: readonly T[]): T {
  return items[Math.floor(random() * items.length)]!;
}

/** An integer in [min, max]. */
function between(random: Random, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

export class LivingPopulation {
  readonly finishedCap: number;
  private readonly randoms = new Map<string, Random>();
  /** Per organization, the ids there at the start: they never age out. */
  private readonly original = new Map<string, ReadonlySet<string>>();
  private born = 0;

  constructor(
    private readonly store: SimulatorStore,
    options: LivingOptions = {},
  ) {
    this.finishedCap = options.finishedCap ?? DEFAULT_FINISHED_CAP;
    const seed = options.seed ?? 1;
    store.organizations.forEach((org, index) => {
      // One generator per organization: what one organization's clients do leaves the other alone.
      this.randoms.set(org.uuid, prng(Math.imul(seed, 7919) + index));
      this.original.set(org.uuid, new Set(store.progress(org).map((job) => job.record.id)));
      this.prime(org);
      this.keepAlive(org);
    });
  }

  /** One step of the simulator's clock, after `store.advance()`. */
  step(): void {
    for (const org of this.store.organizations) {
      this.endSome(org);
      if (this.random(org)() < ARRIVAL) this.register(org, 'REGISTERED');
      this.keepAlive(org);
      this.ageOut(org);
    }
  }

  /** Finished jobs of the organization that can age out (not there at the start). */
  agingJobs(org: SimulatedOrganization): FineTuneJobRecord[] {
    const original = this.original.get(org.uuid)!;
    return this.store
      .progress(org)
      .map((job) => job.record)
      .filter((record) => isTerminal(record.status) && !original.has(record.id));
  }

  private random(org: SimulatedOrganization): Random {
    return this.randoms.get(org.uuid)!;
  }

  /** Starts with jobs under way when the seed has none (e.g. no seeded jobs at all). */
  private prime(org: SimulatedOrganization): void {
    const jobs = this.store.progress(org);
    let running = jobs.filter((job) => job.record.status === 'RUNNING').length;
    for (; running < MIN_RUNNING; running++) this.register(org, 'RUNNING');
    if (!jobs.some((job) => job.record.status === 'STARTING')) this.register(org, 'STARTING');
  }

  /** Running jobs fail, or someone stops or cancels them; never below MIN_RUNNING. */
  private endSome(org: SimulatedOrganization): void {
    const random = this.random(org);
    const runningIds = this.store
      .progress(org)
      .filter((job) => job.record.status === 'RUNNING')
      .map((job) => job.record.id);
    let running = runningIds.length;
    for (const id of runningIds) {
      if (running <= MIN_RUNNING) return;
      const roll = random();
      const result =
        roll < FAILURE
          ? this.store.fail(org, id)
          : roll < FAILURE + STOP
            ? this.store.stop(org, id)
            : roll < FAILURE + STOP + CANCEL
              ? this.store.cancel(org, id)
              : undefined;
      if (result?.ok) running -= 1;
    }
  }

  /**
   * Makes sure the next step also has jobs RUNNING and STARTING: a running job writes one
   * checkpoint more, a starting one is ready a step sooner, or a new job registers.
   */
  private keepAlive(org: SimulatedOrganization): void {
    const jobs = this.store.progress(org);
    const inStatus = (status: string) => jobs.filter((job) => job.record.status === status);
    const running = inStatus('RUNNING');
    const starting = inStatus('STARTING');

    let runningNext =
      running.filter((job) => job.stepsLeft >= 2).length +
      starting.filter((job) => job.stepsLeft === 1).length;
    for (const job of running.filter((j) => j.stepsLeft === 1)) {
      if (runningNext >= MIN_RUNNING) break;
      this.store.schedule(org, job.record.id, 2);
      runningNext += 1;
    }
    for (const job of starting.filter((j) => j.stepsLeft >= 2)) {
      if (runningNext >= MIN_RUNNING) break;
      this.store.schedule(org, job.record.id, 1);
      runningNext += 1;
    }

    // Read again: the loop above may have made a starting job ready.
    const startingNext = this.store
      .progress(org)
      .some(
        (job) =>
          (job.record.status === 'STARTING' && job.stepsLeft >= 2) ||
          (job.record.status === 'REGISTERED' && job.stepsLeft === 1),
      );
    if (!startingNext) this.register(org, 'REGISTERED', 1);
  }

  /** The oldest finished jobs beyond the cap go, as a provider's retention would remove them. */
  private ageOut(org: SimulatedOrganization): void {
    const finished = this.agingJobs(org).sort(
      (a, b) => a.updated_at.localeCompare(b.updated_at) || a.id.localeCompare(b.id),
    );
    for (const record of finished.slice(0, Math.max(0, finished.length - this.finishedCap))) {
      this.store.remove(org, record.id);
    }
  }

  /**
   * A new job, REGISTERED as a client's create makes it; or, only when priming, already STARTING
   * or RUNNING, as if it had been created a while ago.
   */
  private register(
    org: SimulatedOrganization,
    status: 'REGISTERED' | 'STARTING' | 'RUNNING',
    registeredSteps?: number,
  ): void {
    const random = this.random(org);
    this.born += 1;
    const name = `${pick(random, SUBJECTS)}-${pick(random, TASKS)}-run${this.born}`;
    let id: string;
    do id = `ftj-${name}-${hex(random, 8)}`;
    while (this.store.get(org, id));
    const now = this.store.now();
    const created =
      status === 'REGISTERED' ? now : new Date(now.getTime() - between(random, 60, 1800) * 1000);
    const record = generatedJob(random, org, {
      name,
      id,
      status,
      model: pick(random, MODELS),
      created,
      updated: now,
      trainingFiles: 1,
    });
    const written = status === 'RUNNING' ? between(random, 1, 3) : 0;
    const metrics = Array.from({ length: written }, (_, n) => checkpointEntry(n + 1));
    this.store.put(org, record, metrics, written + between(random, 6, 14), {
      dwell: { REGISTERED: registeredSteps ?? between(random, 1, 2), STARTING: between(random, 2, 4) },
    });
  }
}
