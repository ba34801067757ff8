/** `baton keys list|rotate|retire ID` — manage the broker's root signing keys. */
import { join } from 'node:path';
import { Keyring } from '../keys/keyring.ts';
import { defineCommand, output, UsageError } from './command.ts';
import { terminalText as t } from './terminal-text.ts';

const USAGE = `usage: baton keys list|rotate|retire <id> [--data-dir DIR | --keys-file FILE] [--json]
  The key file: --keys-file, else BATON_KEYS_FILE, else <data dir>/keys.json (what the broker reads).
  rotate   add a new active key; the previous one keeps verifying until retired
  retire   stop publishing a non-active key: tokens it signed stop verifying`;

export const keys = defineCommand(
  'list, rotate or retire the root signing keys',
  { name: 'keys', usage: USAGE, options: { 'data-dir': { type: 'string' }, 'keys-file': { type: 'string' } }, positionals: { max: 2 }, subcommands: ['list', 'rotate', 'retire'] },
  async ({ values, positionals }) => {
    const [action, id] = positionals;
    if (action !== 'list' && action !== 'rotate' && !(action === 'retire' && id && /^\d+$/.test(id))) {
      throw new UsageError(action === 'retire' ? 'retire needs a key id (a number)' : 'say list, rotate or retire <id>');
    }
    if (action !== 'retire' && id !== undefined) throw new UsageError(`unexpected argument "${t(id)}"`);
    const file = values['keys-file'] ?? process.env.BATON_KEYS_FILE ?? join(values['data-dir'] ?? process.env.BATON_DATA_DIR ?? '.baton', 'keys.json');
    const ring = Keyring.open(file);
    let rotated: number | undefined;
    if (action === 'rotate') rotated = ring.rotate();
    else if (action === 'retire') ring.retire(Number(id));
    const published = ring.published();
    output(
      values.json,
      { ...(rotated !== undefined ? { rotated } : {}), keys: published.map((k) => ({ id: k.id, status: k.status, created_at: k.created_at, public_key: k.public_key })) },
      () =>
        [
          ...(rotated !== undefined ? [`new active key ${rotated}`] : []),
          ...published.map((k) => `${k.id}\t${k.status}\t${t(k.created_at)}\ted25519/${t(k.public_key)}`),
        ].join('\n'),
    );
    return 0;
  },
);
