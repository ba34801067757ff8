/**
 * Signing in. OIDC authorization code with PKCE (RFC 7636): the page makes the verifier, sends its
 * S256 challenge to the issuer, and on the way back hands the one-time code and the verifier to the
 * broker (POST /console/api/session), which redeems the code at the issuer and exchanges the
 * issuer's token for a Baton token (RFC 8693). The code is removed from the address bar before
 * anything else. In dev mode a Baton token may be pasted instead.
 */
import { api, ApiError, session } from './api.ts';
import { h, replace } from './dom.ts';

const PKCE_KEY = 'baton.console.pkce';

export interface SignInOptions {
  oidc: { issuer: string; authorizationEndpoint: string; clientId: string; scope: string; redirectUri: string } | null;
  paste: boolean;
}

function base64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function random(n: number): string {
  return base64url(crypto.getRandomValues(new Uint8Array(n)));
}

async function startSignIn(oidc: NonNullable<SignInOptions['oidc']>): Promise<void> {
  if (!crypto.subtle) throw new Error('this page is not in a secure context (use https, or a loopback address)');
  const verifier = random(32);
  const state = random(16);
  const challenge = base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))));
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state }));
  const url = new URL(oidc.authorizationEndpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: oidc.clientId,
    redirect_uri: oidc.redirectUri,
    scope: oidc.scope,
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  location.assign(url.toString());
}

/** On /console/callback: redeem the code (once), or throw saying why not. */
export async function finishSignIn(): Promise<void> {
  const params = new URLSearchParams(location.search);
  // the code leaves the address bar (and so the history) at once
  history.replaceState(null, '', '/console');
  const saved = sessionStorage.getItem(PKCE_KEY);
  sessionStorage.removeItem(PKCE_KEY);
  if (params.get('error')) throw new Error(`the issuer refused the sign-in: ${params.get('error')} ${params.get('error_description') ?? ''}`);
  const code = params.get('code');
  const { verifier, state } = saved ? (JSON.parse(saved) as { verifier: string; state: string }) : { verifier: '', state: '' };
  if (!code || !verifier || params.get('state') !== state) throw new Error('this sign-in response does not belong to a sign-in started here: start again');
  const redirectUri = `${location.origin}/console/callback`;
  const res = await api<{ access_token: string }>('/console/api/session', { method: 'POST', body: { code, code_verifier: verifier, redirect_uri: redirectUri }, token: null });
  session.set(res.access_token);
}

export function signInPage(main: HTMLElement, options: SignInOptions, problem: string | undefined, done: () => void): void {
  const error = h('div', { 'aria-live': 'assertive' }, problem ? h('p', { role: 'alert', class: 'error' }, problem) : null);
  const parts: Node[] = [h('h1', {}, 'Sign in'), h('p', { class: 'lead' }, 'The console is for access reviews: it needs a token with the admin or approver role.'), error];
  const oidc = options.oidc;
  if (oidc) {
    const button = h('button', { type: 'button', class: 'primary' }, 'Sign in with your identity provider');
    button.addEventListener('click', () => {
      startSignIn(oidc).catch((err: Error) => replace(error, h('p', { role: 'alert', class: 'error' }, err.message)));
    });
    const wrongOrigin = new URL(oidc.redirectUri).origin !== location.origin;
    parts.push(
      h('section', { 'aria-labelledby': 'oidc-h' }, h('h2', { id: 'oidc-h' }, 'Single sign-on'), h('p', {}, 'Issuer: ', h('code', {}, oidc.issuer)), wrongOrigin ? h('p', { class: 'error' }, `Open the console at ${new URL(oidc.redirectUri).origin}/console/ to sign in.`) : null, h('p', {}, button)),
    );
  }
  if (options.paste) {
    const area = h('textarea', { id: 'paste-token', rows: 4, autocomplete: 'off', spellcheck: 'false' });
    const form = h(
      'form',
      { class: 'paste' },
      h('h2', {}, 'Paste a token (dev mode)'),
      h('p', { class: 'muted' }, 'A Baton token, e.g. from ', h('code', {}, 'baton login --sub root --groups admins'), '. It stays in this tab only.'),
      h('p', {}, h('label', { for: 'paste-token' }, 'Baton token'), area),
      h('p', {}, h('button', { type: 'submit' }, 'Use this token')),
    );
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const token = area.value.trim();
      try {
        await api('/console/api/me', { token });
        session.set(token);
        area.value = '';
        done();
      } catch (err) {
        replace(error, h('p', { role: 'alert', class: 'error' }, err instanceof ApiError ? err.message : String(err)));
      }
    });
    parts.push(form);
  }
  if (!oidc && !options.paste) parts.push(h('p', { class: 'error' }, 'No sign-in is configured: set console.oidc (docs/console.md).'));
  replace(main, ...parts);
}
