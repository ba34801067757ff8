/**
 * The Baton console: sign-in, then four pages behind hash routes (`#/tree?by=token&q=tok_…`,
 * `#/sessions`, `#/approvals`, `#/audit?…`). Hash parameters are ids, names and filters — never a
 * token, which stays in sessionStorage and the Authorization header.
 */
import { api, ApiError, session, type Me } from './api.ts';
import { approvalsPage } from './approvals.ts';
import { auditPage } from './audit.ts';
import { h, replace } from './dom.ts';
import type { Cleanup, PageContext } from './page.ts';
import { sessionsPage } from './sessions.ts';
import { finishSignIn, signInPage, type SignInOptions } from './sign-in.ts';
import { applyTheme, currentTheme, toggleTheme } from './theme.ts';
import { treePage } from './tree.ts';

const PAGES: Record<string, { title: string; render: (ctx: PageContext) => void | Cleanup }> = {
  tree: { title: 'Delegation trees', render: treePage },
  sessions: { title: 'Live sessions', render: sessionsPage },
  approvals: { title: 'Approvals', render: approvalsPage },
  audit: { title: 'Audit search', render: auditPage },
};

const main = document.getElementById('main')!;
const nav = document.getElementById('nav')!;
const who = document.getElementById('who')!;
const live = document.getElementById('live')!;
const themeButton = document.getElementById('theme') as HTMLButtonElement;
let cleanup: Cleanup | undefined;
let me: Me | undefined;

function status(message: string): void {
  live.textContent = '';
  // a fresh text node is announced even when the text repeats
  setTimeout(() => (live.textContent = message), 50);
}

function route(): { page: string; params: URLSearchParams } {
  const [path, query] = location.hash.replace(/^#\/?/, '').split('?');
  return { page: path && PAGES[path] ? path : '', params: new URLSearchParams(query ?? '') };
}

function render(): void {
  cleanup?.();
  cleanup = undefined;
  if (!me) return;
  let { page, params } = route();
  if (!page) page = me.admin ? 'tree' : 'approvals';
  for (const a of nav.querySelectorAll('a')) {
    if (a.dataset.page === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  document.title = `${PAGES[page]!.title} — Baton console`;
  const ctx: PageContext = {
    main,
    me,
    params,
    status,
    navigate(next) {
      location.hash = `#/${page}?${new URLSearchParams(next).toString()}`;
    },
  };
  cleanup = PAGES[page]!.render(ctx) ?? undefined;
  main.focus({ preventScroll: true });
}

function signOut(): void {
  session.clear();
  me = undefined;
  void start();
}

function shell(m: Me): void {
  nav.hidden = false;
  replace(
    nav,
    h('ul', {}, Object.entries(PAGES).map(([id, p]) => h('li', {}, h('a', { href: `#/${id}`, 'data-page': id }, p.title)))),
  );
  replace(
    who,
    h('span', {}, 'Signed in as ', h('strong', {}, m.subject ?? '?'), ` (${m.roles.join(', ') || 'no role'})`),
    ' ',
    h('button', { type: 'button', class: 'secondary small', onclick: signOut }, 'Sign out'),
  );
}

async function start(problem?: string): Promise<void> {
  nav.hidden = true;
  replace(who);
  if (location.pathname === '/console/callback') {
    try {
      await finishSignIn();
    } catch (err) {
      problem = err instanceof Error ? err.message : String(err);
    }
  }
  if (session.token) {
    try {
      me = await api<Me>('/console/api/me');
      if (!me.admin && !me.approver) {
        session.clear();
        me = undefined;
        problem = 'This token holds neither the admin nor the approver role (on an undelegated token): the console has nothing to show it.';
      }
    } catch (err) {
      session.clear();
      me = undefined;
      problem = err instanceof ApiError ? `The session ended: ${err.message}` : String(err);
    }
  }
  if (me) {
    shell(me);
    render();
    return;
  }
  document.title = 'Sign in — Baton console';
  try {
    const options = await api<SignInOptions>('/console/api/sign-in', { token: null });
    signInPage(main, options, problem, () => void start());
  } catch (err) {
    replace(main, h('h1', {}, 'Baton console'), h('p', { role: 'alert', class: 'error' }, (err as Error).message));
  }
}

document.querySelector('.skip')?.addEventListener('click', (ev) => {
  ev.preventDefault(); // the hash is the route
  main.focus();
});
applyTheme();
const themeLabel = () => {
  const t = currentTheme();
  themeButton.setAttribute('aria-pressed', String(t === 'dark'));
};
themeButton.addEventListener('click', () => {
  toggleTheme();
  themeLabel();
});
themeLabel();
window.addEventListener('hashchange', render);
void start();
