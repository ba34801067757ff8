/** `baton keys list|rotate|retire ID` — manage the broker's root signing keys. */
import { join } from 'node:path';
import { Keyring } from '../keys/keyring.ts';
import { parseOptions, type Command } from './command.ts';
import { terminalText as t } from './terminal-text.ts';

const USAGE = `usage: baton keys list|rotate|retire <id> [--data-dir DIR]
  rotate   add a new active key; the previous one keeps verifying until retired
  retire   stop publishing a non-active key: tokens it signed stop verifying`;

export const keys: Command = {
  summary: 'list, rotate or retire the root signing keys',
  async run(argv) {
    const { values, positionals } = parseOptions(argv, { 'data-dir': { type: 'string' } }, USAGE);
    const ring = Keyring.open(join(values['data-dir'] ?? process.env.BATON_DATA_DIR ?? '.baton', 'keys.json'));
    const [action, id] = positionals;
    if (action === 'rotate') process.stdout.write(`new active key ${ring.rotate()}\n`);
    else if (action === 'retire' && id && /^\d+$/.test(id)) ring.retire(Number(id));
    else if (action !== 'list') {
      process.stderr.write(`${USAGE}\n`);
      return 2;
    }
    for (const k of ring.published()) process.stdout.write(`${k.id}\t${k.status}\t${t(k.created_at)}\ted25519/${t(k.public_key)}\n`);
    return 0;
  },
};
