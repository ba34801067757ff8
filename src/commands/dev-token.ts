/** `baton dev-token --sub alice --groups analysts` — a token from the running dev broker's OIDC issuer. */
import { parseOptions, type Command } from './command.ts';

const USAGE = `usage: baton dev-token --sub SUBJECT [--groups G1,G2] [--client AGENT] [--broker URL]
  Asks the DEV issuer of a running \`baton dev\` (default broker http://127.0.0.1:8080) for an OIDC token.`;

export const devToken: Command = {
  summary: 'print a dev OIDC token (baton dev only)',
  async run(argv) {
    const { values } = parseOptions(
      argv,
      { sub: { type: 'string' }, groups: { type: 'string' }, client: { type: 'string' }, broker: { type: 'string' }, ttl: { type: 'string' } },
      USAGE,
    );
    if (!values.sub) throw new Error('--sub is required');
    const broker = values.broker ?? process.env.BATON_BROKER ?? 'http://127.0.0.1:8080';
    const res = await fetch(`${broker}/dev/oidc/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ sub: values.sub, groups: values.groups, client_id: values.client, ttl: values.ttl }),
    }).catch((e: Error) => {
      throw new Error(`cannot reach the dev broker at ${broker}: ${e.message}`);
    });
    const body = (await res.json().catch(() => ({}))) as { access_token?: string; title?: string; error_description?: string };
    if (!res.ok || !body.access_token) throw new Error(`dev issuer refused: ${body.title ?? body.error_description ?? res.status}`);
    process.stdout.write(`${body.access_token}\n`);
    return 0;
  },
};
