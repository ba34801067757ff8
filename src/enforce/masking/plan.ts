/**
 * The masking decision for one session: which result columns of a statement are masked, how, and
 * what the audit says about it. Wire-agnostic: the Postgres relay applies the `ResultMask`es.
 *
 * A column is masked by its rule when it IS a masked column (`email` → `****@example.com`), masked
 * whole (`****`) when it is COMPUTED from any masked column (`upper(email)`, `c.*` inside
 * `row_to_json`, a UNION with one, a view computing it), and scanned by the detectors when its
 * provenance cannot be proven (a user function, a function in FROM). A rule is lifted for a relation by `right(<relation>, "read_unmasked")` —
 * which attenuation can drop, never add.
 */
import type { MaskingPolicy, MaskMethod } from '../../policy/schema.ts';
import { covers } from '../../token/vocabulary.ts';
import type { ColumnSource, OutputColumn, ResultShape } from '../../proxy/pg/classify/provenance.ts';
import type { ColumnMask, ResultMask } from '../../proxy/pg/gate.ts';
import type { DetectorSet } from './detectors.ts';
import { BYTE_MASKS, maskFn } from './methods.ts';

export interface SessionMaskingOptions {
  policy: MaskingPolicy;
  detectors: DetectorSet;
  hmacKey: string | Buffer;
  /** True when the session's token holds `read_unmasked` on this relation resource. */
  mayUnmask: (relation: string) => boolean;
}

/** A statement's masking: what the relay applies and what the audit records. */
export interface StatementMasking {
  readonly mask: ResultMask | undefined;
  /** `public.customers.card_number:last4`, `$2:redact<-public.customers.email` (computed), `$3:detect` — never values. */
  readonly columns: readonly string[];
  /** Masked columns read by predicates (allowed; flagged). */
  readonly predicates: readonly string[];
}

const NOTHING: StatementMasking = Object.freeze({ mask: undefined, columns: [], predicates: [] });

export class SessionMasking {
  readonly #opts: SessionMaskingOptions;
  readonly #methods = new Map<string, MaskMethod | undefined>();
  readonly #fns = new Map<MaskMethod, ColumnMask>();
  readonly #detect: ColumnMask;
  readonly #memo = new WeakMap<ResultShape, StatementMasking>();
  /** The policy masks anything at all (a rule or a detector); otherwise every answer is NOTHING. */
  readonly #active: boolean;

  constructor(opts: SessionMaskingOptions) {
    this.#opts = opts;
    const scan = opts.detectors.scan.bind(opts.detectors);
    this.#detect = opts.detectors.names.length ? { kind: 'detect', scan } : undefined;
    this.#active = opts.policy.rules.length > 0 || opts.detectors.names.length > 0;
  }

  /** True when some access is to a relation with a masked column the token cannot lift. */
  touchesMasked(accesses: readonly { resource: string }[]): boolean {
    return this.#active && accesses.some((a) => this.#method({ relations: [a.resource], column: '*' }) !== undefined);
  }

  /**
   * Values PostgreSQL echoes in errors and notices, replaced: the quoted input of `invalid input
   * syntax …: "<value>"`, `Key (…)=(<values>)`, `Failing row contains (<values>)`, then the detectors.
   */
  readonly scrubErrors = (text: string): string => {
    const t = text
      .replace(/: "(?:[^"]|"")*"$/s, ': "****"')
      .replace(/=\((.*)\)( already exists| is not present in table| conflicts with existing key)/s, '=(****)$2')
      .replace(/(Failing row contains|[Rr]ow) \((.*)\)/s, '$1 (****)');
    return this.#opts.detectors.scan(t) ?? t;
  };

  /** Masked columns whose values the statement would write elsewhere (laundering): labels, empty when none. */
  maskedWrites(shape: ResultShape | undefined): string[] {
    if (!shape?.writes || !this.#active) return [];
    return [...new Set(shape.writes.filter((w) => this.#method(w) !== undefined).map(label))];
  }

  /** The masking of a statement's result (memoized per classified shape). */
  statement(shape: ResultShape | undefined): StatementMasking {
    if (shape === undefined || !this.#active) return NOTHING;
    let m = this.#memo.get(shape);
    if (m === undefined) this.#memo.set(shape, (m = this.#decide(shape)));
    return m;
  }

  #decide(shape: ResultShape): StatementMasking {
    const audit: string[] = [];
    const columns = shape.columns?.map((c, i) => this.#column(c, `$${i + 1}`, audit));
    const every = this.#column(shape.every, '$*', shape.columns ? [] : audit);
    const predicates = [...new Set(shape.predicates.flatMap((p) => (this.#method(p) ? [label(p)] : [])))];
    const any = columns ? columns.some((c) => c !== undefined) : every !== undefined;
    if (!any) return predicates.length ? { mask: undefined, columns: [], predicates } : NOTHING;
    return { mask: { ...(columns ? { columns } : {}), every }, columns: audit, predicates };
  }

  #column(c: OutputColumn, position: string, audit: string[]): ColumnMask {
    if (c.direct) {
      const m = this.#method(c.direct);
      if (m) {
        audit.push(`${label(c.direct)}:${m}`);
        return this.#fn(m);
      }
    }
    const masked = c.derived.filter((d) => this.#method(d) !== undefined);
    if (masked.length) {
      audit.push(`${position}:redact<-${[...new Set(masked.map(label))].join('+')}`);
      return this.#whole;
    }
    if ((c.unproven || this.#opts.policy.detectors.scope === 'all') && this.#detect) {
      if (c.unproven) audit.push(`${position}:detect`);
      return this.#detect;
    }
    return undefined;
  }

  /** The rule's method for a source column, unless the token lifts it; `*` = any masked column. */
  #method(source: ColumnSource): MaskMethod | undefined {
    const key = `${source.relations.join('\u0000')}\u0001${source.column}`;
    if (this.#methods.has(key)) return this.#methods.get(key);
    let method: MaskMethod | undefined;
    for (const relation of source.relations) {
      for (const rule of this.#opts.policy.rules) {
        const applies = relation === '*' || rule.resources.some((r) => covers(r, relation));
        if (!applies) continue;
        const m = source.column === '*' ? (Object.keys(rule.columns).length ? 'redact' : undefined) : rule.columns[source.column];
        if (m === undefined) continue;
        if (relation !== '*' && this.#opts.mayUnmask(relation)) continue;
        method ??= m;
      }
    }
    this.#methods.set(key, method);
    return method;
  }

  /** Computed from a masked column: `****`, JSON included. */
  get #whole(): ColumnMask {
    const redact = this.#fn('redact') as Extract<ColumnMask, { kind: 'method' }>;
    return (this.#wholeMask ??= { ...redact, whole: true });
  }
  #wholeMask: ColumnMask;

  #fn(method: MaskMethod): ColumnMask {
    let f = this.#fns.get(method);
    if (f === undefined) {
      const apply = maskFn(method, this.#opts.hmacKey);
      const bytes = BYTE_MASKS[method];
      f = bytes ? { kind: 'method', apply, bytes } : { kind: 'method', apply };
      this.#fns.set(method, f);
    }
    return f;
  }
}

/** `pg:appdb/public.customers` + `email` → `public.customers.email`. */
function label(s: ColumnSource): string {
  const rel = s.relations.length === 1 ? s.relations[0]!.replace(/^pg:[^/]+\//, '') : `{${s.relations.map((r) => r.replace(/^pg:[^/]+\//, '')).join(',')}}`;
  return `${rel}.${s.column}`;
}
