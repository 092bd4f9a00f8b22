/**
 * Messages received on one stream and not yet read, for either end of a streaming call: recv()
 * takes the next one, waits for it, or reports the end (undefined) or the stream's error.
 */
export class Inbox implements AsyncIterable<Uint8Array> {
  #queue: Uint8Array[] = [];
  #waiters: { resolve: (v: Uint8Array | undefined) => void; reject: (e: Error) => void }[] = [];
  #ended = false;
  #error: Error | undefined;

  /** The peer closed its side: nothing more will arrive. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Why the stream failed, if it did. */
  get error(): Error | undefined {
    return this.#error;
  }

  push(m: Uint8Array): void {
    if (this.#ended || this.#error) return;
    const w = this.#waiters.shift();
    if (w) w.resolve(m);
    else this.#queue.push(m);
  }

  /** Marks the end; queued messages are still read first. False if already ended or failed. */
  end(): boolean {
    if (this.#ended || this.#error) return false;
    this.#ended = true;
    for (const w of this.#waiters.splice(0)) w.resolve(undefined);
    return true;
  }

  /** Fails every pending and later recv() once the queue is read. False if already failed. */
  fail(err: Error): boolean {
    if (this.#error) return false;
    this.#error = err;
    for (const w of this.#waiters.splice(0)) w.reject(err);
    return true;
  }

  recv(): Promise<Uint8Array | undefined> {
    const m = this.#queue.shift();
    if (m) return Promise.resolve(m);
    if (this.#error) return Promise.reject(this.#error);
    if (this.#ended) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      const m = await this.recv();
      if (m === undefined) return;
      yield m;
    }
  }
}
