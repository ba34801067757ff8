#!/usr/bin/env node
// The `baton` command: runs the compiled CLI (dist/cli.js, built by `npm run build` / `prepare`).
//
// In a checkout (src/ next to dist/), a missing or stale build — a file under src/ changed, added or
// removed since the last build — runs the TypeScript sources through tsx instead (a dev dependency),
// so what runs is always the code in the tree (the check costs a few ms). An installed package has no
// src/ and always runs dist/. BATON_CLI_FROM=dist or =src forces one or the other.
import { existsSync, readdirSync, statSync } from 'node:fs';

const root = new URL('../', import.meta.url);
const built = new URL('dist/.built', root);
const src = new URL('src/', root);

/** A file or folder under `dir` changed after `time` (a folder's time covers files added, moved in or removed). */
function newerThan(dir, time) {
  if (statSync(dir).mtimeMs > time) return true;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = new URL(e.isDirectory() ? `${e.name}/` : e.name, dir);
    if (e.isDirectory() ? newerThan(p, time) : statSync(p).mtimeMs > time) return true;
  }
  return false;
}

function useSources() {
  if (process.env.BATON_CLI_FROM === 'dist') return false;
  if (!existsSync(src)) return false;
  if (process.env.BATON_CLI_FROM === 'src' || !existsSync(built)) return true;
  return newerThan(src, statSync(built).mtimeMs);
}

if (useSources()) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('src/cli.ts', root).href);
} else {
  await import(new URL('dist/cli.js', root).href);
}
