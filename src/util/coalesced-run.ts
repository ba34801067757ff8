/**
 * One async task that callers may ask for at any time, run at most once at a time. A request made
 * while a run is in flight schedules exactly one more run after it, so every request is followed by a
 * run that STARTED after it (a refresh or resync never misses a change announced meanwhile).
 *
 * @example
 * const sync = new CoalescedRun(() => pullFeed(), () => stopped);
 * await sync.run();              // starts, or joins the run in flight (and schedules one more)
 * await sync.running;            // when stopping
 */
export class CoalescedRun {
  #running: Promise<void> | undefined;
  #again = false;

  constructor(
    private readonly task: () => Promise<void>,
    private readonly stopped: () => boolean,
  ) {}

  /** The run in progress, if any. */
  get running(): Promise<void> | undefined {
    return this.#running;
  }

  /** Starts a run, or returns the one in flight after scheduling one more. */
  run(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = this.task().finally(() => {
      this.#running = undefined;
      if (this.#again && !this.stopped()) {
        this.#again = false;
        void this.run();
      }
    });
    return this.#running;
  }
}
