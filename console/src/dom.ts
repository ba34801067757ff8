/**
 * A few DOM helpers. Text always goes in as text nodes (never innerHTML): audit data (purposes,
 * statements, subjects) is written by whoever holds a token and must never become markup.
 */
export type Child = Node | string | number | null | undefined | false | Child[];
type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/**
 * An element with attributes (`on…` functions become listeners; `true` = present, false/null = absent) and children.
 *
 * @example h('button', { type: 'button', onclick: () => go() }, 'Refresh')
 */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'value' && 'value' in el) (el as HTMLInputElement).value = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

export function append(el: Element, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(typeof c === 'number' ? String(c) : c);
  }
}

const SVG = 'http://www.w3.org/2000/svg';
/** An SVG element (the histogram). */
export function s(tag: string, attrs: Record<string, string | number> = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  append(el as unknown as Element, children);
  return el;
}

/** Replaces the children of `el`. */
export function replace(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A local time, with the full ISO instant in the tooltip and the machine-readable attribute. */
export function time(iso: string | undefined | null): Child {
  if (!iso) return '—';
  const d = new Date(iso);
  return h('time', { datetime: iso, title: iso }, d.toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' }));
}

/** Seconds as `1h 2m`, `45s`. */
export function duration(seconds: number): string {
  if (seconds < 60) return `${seconds}s`;
  const m = Math.floor(seconds / 60);
  if (m < 60) return `${m}m ${seconds % 60}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

export function badge(text: string, kind: 'ok' | 'bad' | 'warn' | 'muted'): HTMLElement {
  return h('span', { class: `badge badge-${kind}` }, text);
}

/**
 * Asks for confirmation in a modal <dialog> (focus trapped by the browser, Escape cancels); with
 * `reason`, a text field whose value is returned. Resolves undefined when cancelled.
 */
export function confirmDialog(opts: { title: string; body: Child; confirm: string; reason?: { label: string; required: boolean } }): Promise<string | undefined> {
  return new Promise((resolve) => {
    const reasonId = `reason-${Math.random().toString(36).slice(2)}`;
    const input = opts.reason ? h('textarea', { id: reasonId, name: 'reason', rows: 3, required: opts.reason.required, maxlength: 500 }) : undefined;
    const titleId = `dlg-${Math.random().toString(36).slice(2)}`;
    const dialog = h(
      'dialog',
      { 'aria-labelledby': titleId, class: 'dialog' },
      h(
        'form',
        { method: 'dialog' },
        h('h2', { id: titleId }, opts.title),
        h('div', {}, opts.body),
        input ? h('p', {}, h('label', { for: reasonId }, opts.reason!.label), input) : null,
        h(
          'div',
          { class: 'actions' },
          h('button', { type: 'submit', value: 'cancel', formnovalidate: true, class: 'secondary' }, 'Cancel'),
          h('button', { type: 'submit', value: 'ok', class: 'danger' }, opts.confirm),
        ),
      ),
    );
    document.body.append(dialog);
    dialog.addEventListener('close', () => {
      const ok = dialog.returnValue === 'ok';
      const value = input?.value.trim() ?? '';
      dialog.remove();
      resolve(ok ? value : undefined);
    });
    dialog.showModal();
    (input ?? dialog.querySelector<HTMLButtonElement>('button.secondary'))?.focus();
  });
}
