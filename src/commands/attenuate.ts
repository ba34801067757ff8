/** `baton attenuate` — offline: read a token (BATON_TOKEN or stdin), print a narrower child. */
import { attenuate as attenuateToken } from '../token/attenuate.ts';
import { parseOptions, readStdin, type Command } from './command.ts';

const USAGE = `usage: baton attenuate --to NAME [--resource R]... [--op OP]... [--ttl 5m] [--purpose TEXT] [--seal]
  Reads the parent token from BATON_TOKEN or stdin; prints the child token on stdout. No network.`;

export async function readToken(): Promise<string> {
  const token = (process.env.BATON_TOKEN ?? '').trim() || (await readStdin()).trim();
  if (!token) throw new Error('no token: set BATON_TOKEN or pipe one on stdin');
  return token;
}

export const attenuate: Command = {
  summary: 'narrow a token offline (resources, operations, TTL, delegate)',
  async run(argv) {
    const { values } = parseOptions(
      argv,
      {
        resource: { type: 'string', multiple: true },
        op: { type: 'string', multiple: true },
        ttl: { type: 'string' },
        to: { type: 'string' },
        purpose: { type: 'string' },
        seal: { type: 'boolean' },
      },
      USAGE,
    );
    if (!values.to) throw new Error('--to NAME is required (who the child token is for)');
    const child = attenuateToken(await readToken(), {
      resources: values.resource,
      operations: values.op,
      ...(values.ttl !== undefined ? { ttl: /^\d+$/.test(values.ttl) ? Number(values.ttl) : values.ttl } : {}),
      delegateTo: values.to,
      ...(values.purpose !== undefined ? { purpose: values.purpose } : {}),
      seal: values.seal ?? false,
    });
    process.stdout.write(`${child}\n`);
    return 0;
  },
};
