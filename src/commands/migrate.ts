/** `baton migrate` — apply pending SQL migrations to DATABASE_URL (or the embedded database). */
import { loadConfig } from '../config/load.ts';
import { openDatabase } from '../store/database.ts';
import { applyMigrations } from '../store/migrate.ts';
import { parseOptions, type Command } from './command.ts';

export const migrate: Command = {
  summary: 'apply pending database migrations',
  async run(argv) {
    const { values } = parseOptions(argv, { config: { type: 'string' } }, 'usage: baton migrate [--config FILE]');
    const config = loadConfig({ file: values.config, overrides: { mode: 'dev' } });
    const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, migrate: false });
    try {
      const applied = await applyMigrations(db.pool);
      process.stdout.write(applied.length ? `applied: ${applied.join(', ')}\n` : 'up to date\n');
      return 0;
    } finally {
      await db.close();
    }
  },
};
