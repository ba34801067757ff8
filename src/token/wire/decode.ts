/**
 * `decodeToken`: a Biscuit token → its blocks as typed Datalog, without the root public key.
 *
 * This is the TypeScript counterpart of biscuit-rust's `UnverifiedBiscuit`: nothing returned here is
 * authenticated. Use it to inspect a token or to attenuate it offline; authorize only with a token
 * parsed by biscuit-wasm with the root key.
 */
import { BatonError } from '../../errors.ts';
import {
  decodeContainer,
  decodePublicKey,
  malformed,
  MAX_TOKEN_BYTES,
  tokenBytes,
  type Container,
  type SignedBlockBytes,
} from './container.ts';
import {
  BINARY_KINDS,
  CHECK_KINDS,
  UNARY_KINDS,
  SCHEMA_VERSION,
  type Check,
  type DecodedBlock,
  type DecodedToken,
  type Expression,
  type MapEntry,
  type Op,
  type Predicate,
  type PublicKeyModel,
  type Query,
  type Rule,
  type Scope,
  type Term,
} from './model.ts';
import { BlockMessage } from './schema.ts';
import { PublicKeyTable, SymbolTable } from './symbols.ts';
import { requiredVersion } from './version.ts';


/** Largest date the Datalog text form can write (RFC 3339 years stop at 9999). */
export const MAX_DATE_SECONDS = 253_402_300_799n;

// Shapes of `BlockMessage.toObject(…, { longs: String, oneofs: true, arrays: true })`.
interface RawKey {
  algorithm: number;
  key: Uint8Array;
}
interface RawTerm {
  Content?: string;
  variable?: number;
  integer?: string;
  string?: string;
  date?: string;
  bytes?: Uint8Array;
  bool?: boolean;
  set?: { set: RawTerm[] };
  array?: { array: RawTerm[] };
  map?: { entries: { key: { Content?: string; integer?: string; string?: string }; value: RawTerm }[] };
}
interface RawPredicate {
  name: string;
  terms: RawTerm[];
}
interface RawOp {
  Content?: string;
  value?: RawTerm;
  unary?: { kind: number; ffiName?: string };
  Binary?: { kind: number; ffiName?: string };
  closure?: { params: number[]; ops: RawOp[] };
}
interface RawScope {
  Content?: string;
  scopeType?: number;
  publicKey?: string;
}
interface RawRule {
  head: RawPredicate;
  body: RawPredicate[];
  expressions: { ops: RawOp[] }[];
  scope: RawScope[];
}
interface RawBlock {
  symbols: Uint8Array[];
  context?: Uint8Array;
  version?: number;
  facts_v2: { predicate: RawPredicate }[];
  rules_v2: RawRule[];
  checks_v2: { queries: RawRule[]; kind?: number }[];
  scope: RawScope[];
  publicKeys: RawKey[];
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function text(bytes: Uint8Array, where: string): string {
  try {
    return utf8.decode(bytes);
  } catch {
    return malformed(`${where} is not valid UTF-8`);
  }
}

function rawBlock(bytes: Uint8Array, index: number): RawBlock {
  try {
    return BlockMessage.toObject(BlockMessage.decode(bytes), {
      longs: String,
      oneofs: true,
      arrays: true,
      defaults: false,
    }) as RawBlock;
  } catch (err) {
    return malformed(`block ${index} is not a Block protobuf message`, err);
  }
}

/** Resolves indices of one block against the tables it was written with. */
class BlockReader {
  constructor(
    private readonly symbols: SymbolTable,
    private readonly keys: PublicKeyTable,
    private readonly where: string,
  ) {}

  symbol(index: string | number): string {
    const s = this.symbols.lookup(BigInt(index));
    return s ?? malformed(`${this.where}: unknown symbol ${index}`);
  }

  term(t: RawTerm): Term {
    switch (t.Content) {
      case 'variable':
        return { variable: this.symbol(t.variable!) };
      case 'integer':
        return { integer: BigInt(t.integer!) };
      case 'string':
        return { string: this.symbol(t.string!) };
      case 'date': {
        const seconds = BigInt(t.date!);
        if (seconds > MAX_DATE_SECONDS) malformed(`${this.where}: date beyond year 9999`);
        return { date: new Date(Number(seconds) * 1000) };
      }
      case 'bytes':
        return { bytes: t.bytes! };
      case 'bool':
        return { bool: t.bool! };
      case 'set':
        return { set: this.set(t.set!.set) };
      case 'null':
        return { null: true };
      case 'array':
        return { array: t.array!.array.map((e) => this.term(e)) };
      case 'map':
        return { map: t.map!.entries.map((e) => this.mapEntry(e)) };
      default:
        return malformed(`${this.where}: empty term`);
    }
  }

  /** As biscuit-rust: sets hold one type, and never variables or other sets. */
  private set(elements: RawTerm[]): Term[] {
    const kinds = new Set(elements.map((e) => e.Content));
    if (kinds.has('variable') || kinds.has('set')) malformed(`${this.where}: a set holds a variable or a set`);
    if (kinds.size > 1) malformed(`${this.where}: set elements of different types`);
    return elements.map((e) => this.term(e));
  }

  private mapEntry(e: NonNullable<RawTerm['map']>['entries'][number]): MapEntry {
    const value = this.term(e.value);
    if (e.key.Content === 'integer') return { key: BigInt(e.key.integer!), value };
    if (e.key.Content === 'string') return { key: this.symbol(e.key.string!), value };
    return malformed(`${this.where}: empty map key`);
  }

  predicate(p: RawPredicate): Predicate {
    return { name: this.symbol(p.name), terms: p.terms.map((t) => this.term(t)) };
  }

  op(o: RawOp): Op {
    switch (o.Content) {
      case 'value':
        return { value: this.term(o.value!) };
      case 'unary': {
        const unary = UNARY_KINDS[o.unary!.kind] ?? malformed(`${this.where}: unknown unary operator`);
        return unary === 'ffi' ? { unary, ffiName: this.ffiName(o.unary!.ffiName) } : { unary };
      }
      case 'Binary': {
        const binary = BINARY_KINDS[o.Binary!.kind] ?? malformed(`${this.where}: unknown binary operator`);
        return binary === 'ffi' ? { binary, ffiName: this.ffiName(o.Binary!.ffiName) } : { binary };
      }
      case 'closure':
        return {
          closure: {
            params: o.closure!.params.map((p) => this.symbol(p)),
            ops: o.closure!.ops.map((c) => this.op(c)),
          },
        };
      default:
        return malformed(`${this.where}: empty operation`);
    }
  }

  private ffiName(name: string | undefined): string {
    return name === undefined ? malformed(`${this.where}: FFI operation without a name`) : this.symbol(name);
  }

  expression(e: { ops: RawOp[] }): Expression {
    return e.ops.map((o) => this.op(o));
  }

  scope(s: RawScope): Scope {
    if (s.Content === 'scopeType' && s.scopeType === 0) return 'authority';
    if (s.Content === 'scopeType' && s.scopeType === 1) return 'previous';
    if (s.Content === 'publicKey') {
      const k = this.keys.lookup(BigInt(s.publicKey!));
      return k ? { publicKey: k } : malformed(`${this.where}: unknown public key ${s.publicKey}`);
    }
    return malformed(`${this.where}: invalid scope`);
  }

  query(r: RawRule): Query {
    return {
      body: r.body.map((p) => this.predicate(p)),
      expressions: r.expressions.map((e) => this.expression(e)),
      scopes: r.scope.map((s) => this.scope(s)),
    };
  }

  rule(r: RawRule): Rule {
    return { head: this.predicate(r.head), ...this.query(r) };
  }

  check(c: RawBlock['checks_v2'][number]): Check {
    const kind = CHECK_KINDS[c.kind ?? 0] ?? malformed(`${this.where}: unknown check kind ${c.kind}`);
    return { kind, queries: c.queries.map((q) => this.query(q)) };
  }
}

/** The token-wide tables: symbols of first-party blocks, keys of every block (biscuit-rust `extract_blocks`). */
function tokenTables(
  raws: readonly RawBlock[],
  signed: readonly SignedBlockBytes[],
): { symbols: string[]; keys: PublicKeyModel[] } {
  const symbols: string[] = [];
  const keys = new PublicKeyTable();
  const collected: PublicKeyModel[] = [];
  const add = (k: PublicKeyModel): void => {
    if (keys.insert(k).added) collected.push(k);
  };
  raws.forEach((raw, i) => {
    const external = signed[i]!.external;
    if (external) add(external.publicKey);
    else symbols.push(...raw.symbols.map((s) => text(s, `block ${i} symbol`)));
    raw.publicKeys.forEach((k) => add(decodePublicKey(k, `block ${i} public key`)));
  });
  return { symbols, keys: collected };
}

function decodeBlock(
  raw: RawBlock,
  signed: SignedBlockBytes,
  index: number,
  tables: { symbols: string[]; keys: PublicKeyModel[] },
): DecodedBlock {
  const where = `block ${index}`;
  const version = raw.version ?? 0;
  if (version < SCHEMA_VERSION.V3_0 || version > SCHEMA_VERSION.V3_3) {
    malformed(`${where}: unsupported schema version ${version}`);
  }
  const own = raw.symbols.map((s) => text(s, `${where} symbol`));
  const publicKeys = raw.publicKeys.map((k) => decodePublicKey(k, `${where} public key`));
  // A third-party block is written against the default symbols and its own keys only.
  const reader = signed.external
    ? new BlockReader(new SymbolTable(own), new PublicKeyTable(publicKeys), where)
    : new BlockReader(new SymbolTable(tables.symbols), new PublicKeyTable(tables.keys), where);
  const facts = raw.facts_v2.map((f) => reader.predicate(f.predicate));
  const rules = raw.rules_v2.map((r) => reader.rule(r));
  const checks = raw.checks_v2.map((c) => reader.check(c));
  const scopes = raw.scope.map((s) => reader.scope(s));
  // biscuit-rust rejects a `kind` field on a v3.0 check even when it says `One`.
  if (version < SCHEMA_VERSION.V3_1 && raw.checks_v2.some((c) => c.kind !== undefined)) {
    malformed(`${where}: check kind in a version ${version} block`);
  }
  const needed = requiredVersion({ facts, rules, checks, scopes, thirdParty: signed.external !== undefined });
  if (needed > version) malformed(`${where}: uses version ${needed} features but declares version ${version}`);
  return {
    index,
    symbols: own,
    ...(raw.context !== undefined ? { context: text(raw.context, `${where} context`) } : {}),
    version,
    signatureVersion: signed.version,
    facts,
    rules,
    checks,
    scopes,
    publicKeys,
    nextKey: signed.nextKey,
    signature: signed.signature,
    revocationId: Buffer.from(signed.signature).toString('hex'),
    ...(signed.external ? { externalKey: signed.external.publicKey } : {}),
  };
}

/** Container + decoded blocks; `appendBlock` needs both. */
export function decodeParts(
  token: string | Uint8Array,
  maxBytes: number,
): { container: Container; decoded: DecodedToken; tables: { symbols: string[]; keys: PublicKeyModel[] } } {
  try {
    const container = decodeContainer(tokenBytes(token, maxBytes));
    const raws = container.blocks.map((b, i) => rawBlock(b.block, i));
    const tables = tokenTables(raws, container.blocks);
    const blocks = raws.map((raw, i) => decodeBlock(raw, container.blocks[i]!, i, tables));
    const decoded: DecodedToken = {
      ...(container.rootKeyId !== undefined ? { rootKeyId: container.rootKeyId } : {}),
      blocks,
      sealed: 'finalSignature' in container.proof,
    };
    return { container, decoded, tables };
  } catch (err) {
    if (err instanceof BatonError) throw err;
    // Anything else (a protobufjs or RangeError on hostile input) is still malformed input.
    return malformed('undecodable', err);
  }
}

/**
 * Decodes a Biscuit v3 token without its root key ("unverified"): blocks, Datalog, revocation ids.
 *
 * @param token URL-safe base64 (as `Biscuit.toBase64()` writes it, padding optional) or raw bytes.
 * @param options.maxBytes refuse larger tokens (default 64 KiB).
 * @throws BatonError `BATON_ERR_TOKEN_MALFORMED` on anything that is not a well-formed token.
 *
 * @example
 * const { blocks, sealed } = decodeToken(token);
 * console.log(blocks.map((b) => b.revocationId), blockToDatalog(blocks[1]!));
 */
export function decodeToken(token: string | Uint8Array, options: { maxBytes?: number } = {}): DecodedToken {
  return decodeParts(token, options.maxBytes ?? MAX_TOKEN_BYTES).decoded;
}
