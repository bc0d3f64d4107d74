/**
 * Waits for a condition the test cannot get an event for (server-side state, a counter):
 * polls it every 20 ms, and fails after `ms` with `what` in the message. The timeout is a
 * generous bound, never what the test asserts.
 *
 * @example
 * ```ts
 * await until('the server saw the cut', () => ts.server.bosh!.stats.cutRequests > before);
 * ```
 */
export async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The value of `p`, or a failure naming `what` if it has not settled after `ms`: for a test
 * that proves something happens promptly, the bound is a generous timeout on the event,
 * never an assertion on the elapsed time.
 */
export async function within<T>(what: string, p: Promise<T>, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
