/** Converting JS values into biscuit-wasm Datalog parameters. */

export type DatalogParam = string | number | boolean | { date: string } | DatalogParam[];

/** A date parameter: biscuit-wasm takes `{ date: ISO-8601 }` (seconds precision is what Biscuit keeps). */
export function dateParam(d: Date): { date: string } {
  return { date: new Date(Math.floor(d.getTime() / 1000) * 1000).toISOString() };
}
