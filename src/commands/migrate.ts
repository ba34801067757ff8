/** `baton migrate` — apply pending SQL migrations to DATABASE_URL (or the embedded database). */
import { loadConfig } from '../config/load.ts';
import { logDatabase, openDatabase } from '../store/database.ts';
import { applyMigrations } from '../store/migrate.ts';
import { defineCommand, output } from './command.ts';

export const migrate = defineCommand(
  'apply pending database migrations',
  { name: 'migrate', usage: 'usage: baton migrate [--config FILE] [--json]', options: { config: { type: 'string' } } },
  async ({ values }) => {
    const config = loadConfig({ file: values.config, overrides: { mode: 'dev' } });
    const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, log: logDatabase, migrate: false });
    try {
      const applied = await applyMigrations(db.pool);
      output(values.json, { applied }, applied.length ? `applied: ${applied.join(', ')}` : 'up to date');
      return 0;
    } finally {
      await db.close();
    }
  },
);
