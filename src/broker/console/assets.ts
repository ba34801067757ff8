/**
 * The console's static files, built by bin/build.mjs into `dist/console/` (index.html and
 * content-hashed `assets/app-<hash>.{js,css}`), read once at start-up and served from memory.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** `dist/console/` of this package, whether the broker runs from dist/ or from src/ (tsx). */
export const CONSOLE_ASSETS_DIR = fileURLToPath(new URL('../../../dist/console/', import.meta.url));

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.map': 'application/json',
};

/** A content-hashed name never changes content: cached for a year, never revalidated. */
const HASHED = /-[A-Za-z0-9]{8,}\.[a-z]+$/;

export interface ConsoleAsset {
  body: Buffer;
  type: string;
  immutable: boolean;
}

export interface ConsoleAssets {
  index: Buffer;
  /** By file name under `assets/`. */
  files: ReadonlyMap<string, ConsoleAsset>;
}

/**
 * The built console, or undefined when it has not been built (a checkout before `npm run build`).
 *
 * @example
 * const assets = loadConsoleAssets(); // dist/console
 */
export function loadConsoleAssets(dir: string = CONSOLE_ASSETS_DIR): ConsoleAssets | undefined {
  const indexFile = join(dir, 'index.html');
  if (!existsSync(indexFile)) return undefined;
  const files = new Map<string, ConsoleAsset>();
  const assetsDir = join(dir, 'assets');
  for (const name of existsSync(assetsDir) ? readdirSync(assetsDir) : []) {
    const type = TYPES[extname(name)];
    if (!type) continue;
    files.set(name, { body: readFileSync(join(assetsDir, name)), type, immutable: HASHED.test(name) });
  }
  return { index: readFileSync(indexFile), files };
}
