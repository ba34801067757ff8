/**
 * Small typed accessors over libpg_query's JSON parse tree. A node is `{ "<Type>": { …fields } }`;
 * fields whose protobuf type is a specific message (e.g. `InsertStmt.relation`) are inlined without
 * the wrapper. Shape surprises throw `Unsupported`: the classifier fails closed.
 */
import { Unsupported } from './unsupported.ts';

/** A parse-tree object (a node body or an inlined message). */
export type Obj = Readonly<Record<string, unknown>>;

/** True for a non-array object. */
export function isObj(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The single `[type, body]` of a wrapped node, or undefined when `value` is not one. */
export function unwrap(value: unknown): [string, Obj] | undefined {
  if (!isObj(value)) return undefined;
  const keys = Object.keys(value);
  if (keys.length !== 1) return undefined;
  const type = keys[0]!;
  const body = value[type];
  if (!/^[A-Z]/.test(type) || !isObj(body)) return undefined;
  return [type, body];
}

/** The body of a wrapped node that must be of `type`. */
export function expectNode(value: unknown, type: string): Obj {
  const n = unwrap(value);
  if (n === undefined || n[0] !== type) throw new Unsupported(`expected ${type}`);
  return n[1];
}

/** An optional inlined message field. */
export function optObj(value: unknown): Obj | undefined {
  if (value === undefined) return undefined;
  if (!isObj(value)) throw new Unsupported('malformed tree');
  return value;
}

/** A list field (absent means empty). */
export function list(value: unknown): readonly unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new Unsupported('malformed tree');
  return value;
}

/** An optional string field. */
export function optStr(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new Unsupported('malformed tree');
  return value;
}

/** The text of a `String` node (`{ String: { sval } }`). */
export function stringNode(value: unknown): string {
  const body = expectNode(value, 'String');
  return optStr(body.sval) ?? '';
}

/** The names of a list of `String` nodes, e.g. a qualified name `[schema, name]`. */
export function nameList(value: unknown): string[] {
  return list(value).map(stringNode);
}

/** The string value of an `A_Const` holding a string, or undefined. */
export function stringConst(value: unknown): string | undefined {
  const n = unwrap(value);
  if (n === undefined || n[0] !== 'A_Const') return undefined;
  const sval = optObj(n[1].sval);
  return sval === undefined ? undefined : optStr(sval.sval);
}

/** True when any node below `value` satisfies `pred` (used for conservative "does it read" checks). */
export function someNode(value: unknown, pred: (type: string, body: Obj) => boolean): boolean {
  if (Array.isArray(value)) return value.some((v) => someNode(v, pred));
  if (!isObj(value)) return false;
  const n = unwrap(value);
  if (n !== undefined && pred(n[0], n[1])) return true;
  return Object.values(n === undefined ? value : n[1]).some((v) => someNode(v, pred));
}
