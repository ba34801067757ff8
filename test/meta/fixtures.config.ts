/**
 * The suite's own configuration (same global set-up, reporters and backends) pointed at the fixture
 * that fails on request — how test/meta/exit-code.test.ts proves `npm test` can fail.
 */
import { defineConfig } from 'vitest/config';
import suite from '../../vitest.config.ts';

// not mergeConfig: it would append to the suite's include list instead of replacing it
export default defineConfig({ ...suite, test: { ...suite.test, include: ['test/meta/fixtures/*.fixture.ts'] } });
