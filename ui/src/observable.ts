/**
 * What the UI's stores have in common: views subscribe to a store and
 * re-render when it calls `emit`. `subscribe` returns the unsubscribe
 * function, as `useEffect` cleanups want.
 */
export class Observable {
  private readonly listeners = new Set<() => void>();

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  }

  protected emit(): void {
    for (const fn of this.listeners) fn();
  }
}
