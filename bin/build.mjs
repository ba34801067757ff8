#!/usr/bin/env node
/**
 * Builds what the packages ship (run by `npm run build`, and by `prepare` on npm install / npm ci):
 *
 * - dist/            the server and CLI (`@batonhq/baton`): every file of src/ compiled to ESM one for
 *                    one (same layout, so paths read relative to a module — migrations/, config/ — still
 *                    resolve), relative `.ts` imports rewritten to `.js`, packages left to node_modules.
 * - dist/console/    the web console (console/): index.html and content-hashed assets/app-<hash>.js
 *                    and .css, bundled for browsers (served by the broker at /console).
 * - packages/sdk/dist/  the SDK (`@batonhq/sdk`): src/sdk/index.ts bundled into one ESM file with
 *                    protobufjs external and Biscuit's wasm glue bundled (its .wasm copied beside
 *                    index.js), plus its .d.ts files.
 *
 * The SDK's module graph is checked with esbuild's metafile: only token code and a few neutral
 * modules, no server code and no package but the two above. Any failure exits non-zero.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const only = process.argv[2]; // 'server' (with the console) | 'sdk' | 'console' | undefined (server + sdk)
const started = performance.now();

function* walk(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) yield* walk(p);
    else yield p;
  }
}

/**
 * Packages dist/ takes bundled into one file each (dist/vendor/<name>.js) instead of loading them
 * file by file from node_modules: protobufjs is ~30 CommonJS modules, a measurable share of
 * `baton attenuate`'s start-up. Same code, same version (its optional `long` is still required from
 * node_modules at run time).
 */
const VENDORED = { protobufjs: { entry: 'node_modules/protobufjs/index.js', external: ['long'] } };

/** Keeps every import external; relative `./x.ts` becomes `./x.js` (the compiled sibling). */
const rewriteTsImports = {
  name: 'rewrite-ts-imports',
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      if (args.kind === 'entry-point') return undefined;
      if (args.path.startsWith('.')) return { path: args.path.replace(/\.ts$/, '.js'), external: true };
      if (Object.hasOwn(VENDORED, args.path)) {
        // dist/ mirrors src/: the path from the importer's folder to src/vendor/ is the one in dist/
        const target = relative(dirname(args.importer), join(root, 'src/vendor', `${args.path}.js`));
        return { path: target.startsWith('.') ? target : `./${target}`, external: true };
      }
      return { path: args.path, external: true };
    });
  },
};

async function buildServer() {
  // Built beside dist/ and swapped in, so a `baton` started meanwhile sees the old build or the new
  // one, never half of one. The stamp carries the time the build STARTED: a source saved during the
  // build is newer than the stamp, so bin/baton.mjs runs the sources until the next build.
  const startedAt = new Date();
  const out = join(root, 'dist');
  const next = join(root, `.dist-${process.pid}`);
  const old = join(root, `.dist-old-${process.pid}`);
  rmSync(next, { recursive: true, force: true });
  try {
    const entryPoints = [...walk(join(root, 'src'))].filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
    await esbuild.build({
      entryPoints,
      outdir: next,
      outbase: join(root, 'src'),
      bundle: true, // with every import external: one output file per source file
      plugins: [rewriteTsImports],
      format: 'esm',
      platform: 'node',
      target: 'node20',
      logLevel: 'warning',
    });
    for (const [name, { entry, external }] of Object.entries(VENDORED)) {
      await esbuild.build({
        entryPoints: [join(root, entry)],
        outfile: join(next, 'vendor', `${name}.js`),
        bundle: true,
        // ESM (a CommonJS file imported from ESM is first scanned for its export names), minified,
        // with a `require` for what the library loads at run time (its optional `long`)
        format: 'esm',
        minify: true,
        banner: { js: "import { createRequire as __vendorRequire } from 'node:module'; const require = __vendorRequire(import.meta.url);" },
        platform: 'node',
        target: 'node20',
        external,
        legalComments: 'inline',
        logLevel: 'error', // protobufjs' optional-module loader uses eval("require"), on purpose
      });
    }
    await buildConsole(join(next, 'console'));
    writeFileSync(join(next, '.built'), `${startedAt.toISOString()}\n`);
    utimesSync(join(next, '.built'), startedAt, startedAt);
    if (existsSync(out)) renameSync(out, old);
    renameSync(next, out);
  } finally {
    rmSync(next, { recursive: true, force: true });
    rmSync(old, { recursive: true, force: true });
  }
}

/**
 * The console (console/): one script and one stylesheet for browsers, named by content hash (the
 * broker serves them immutable), and index.html pointing at them. No inline script or style: the
 * page runs under `script-src 'self'; style-src 'self'`.
 */
async function buildConsole(out) {
  const src = join(root, 'console');
  rmSync(out, { recursive: true, force: true });
  const result = await esbuild.build({
    entryPoints: { app: join(src, 'src/main.ts'), style: join(src, 'style.css') },
    outdir: join(out, 'assets'),
    entryNames: '[name]-[hash]',
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['chrome110', 'firefox110', 'safari16'],
    minify: true,
    metafile: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  const outputs = Object.entries(result.metafile.outputs).filter(([, o]) => o.entryPoint);
  const named = (ext) => {
    const found = outputs.find(([file]) => file.endsWith(ext));
    if (!found) throw new Error(`console build produced no ${ext}`);
    return found[0].split('/').pop();
  };
  const html = readFileSync(join(src, 'index.html'), 'utf8').replace('{{js}}', named('.js')).replace('{{css}}', named('.css'));
  writeFileSync(join(out, 'index.html'), html);
}

/** Modules the SDK may contain: token code, the neutral helpers it shares with the server, Biscuit's glue. */
const SDK_ALLOWED = [/^src\/sdk\//, /^src\/token\//, /^src\/errors\.ts$/, /^src\/policy\/duration\.ts$/, /^biscuit-wasm:/, /biscuit-wasm\/module\//];
const SDK_EXTERNAL = ['protobufjs'];
const BISCUIT_DIR = join(root, 'node_modules/@biscuit-auth/biscuit-wasm/module');

/**
 * In the SDK, src/token/biscuit.ts (which finds biscuit-wasm through Node's resolver at run time) is
 * replaced by a loader bundlers can follow: the JS glue and snippets are imported statically (and
 * bundled), and the .wasm, shipped next to the bundle, is read from `new URL('./biscuit_bg.wasm',
 * import.meta.url)` — the asset pattern webpack 5, Parcel and Vite understand. No top-level await.
 */
const sdkBiscuitLoader = {
  name: 'sdk-biscuit-loader',
  setup(build) {
    build.onResolve({ filter: /\/biscuit\.ts$/ }, (args) => {
      const target = resolve(args.resolveDir, args.path);
      return target === join(root, 'src/token/biscuit.ts') ? { path: 'loader', namespace: 'biscuit-wasm' } : undefined;
    });
    build.onLoad({ filter: /.*/, namespace: 'biscuit-wasm' }, () => {
      const compiled = new WebAssembly.Module(readFileSync(join(BISCUIT_DIR, 'biscuit_bg.wasm')));
      const modules = [...new Set(WebAssembly.Module.imports(compiled).map((i) => i.module))];
      const imports = modules.map((m, i) => `import * as m${i} from ${JSON.stringify(join(BISCUIT_DIR, m))};`).join('\n');
      const table = modules.map((m, i) => `${JSON.stringify(m)}: m${i}`).join(', ');
      const glue = `m${modules.indexOf('./biscuit_bg.js')}`;
      if (!modules.includes('./biscuit_bg.js')) throw new Error('biscuit_bg.wasm does not import ./biscuit_bg.js: loader needs updating');
      return {
        resolveDir: BISCUIT_DIR,
        loader: 'js',
        contents: `${imports}
import { readFileSync } from 'node:fs';
const compiled = new WebAssembly.Module(readFileSync(new URL('./biscuit_bg.wasm', import.meta.url)));
const instance = new WebAssembly.Instance(compiled, { ${table} });
${glue}.__wbg_set_wasm(instance.exports);
// the library's start function prints "biscuit-wasm loading" with console.log: keep stdout clean
const log = console.log;
console.log = () => {};
try {
  instance.exports.__wbindgen_start?.();
} finally {
  console.log = log;
}
export const biscuit = ${glue};
export const { Biscuit, KeyPair, PrivateKey, PublicKey, Authorizer, BlockBuilder, BiscuitBuilder } = ${glue};
`,
      };
    });
  },
};

async function buildSdk() {
  const pkg = join(root, 'packages/sdk');
  const out = join(pkg, 'dist');
  rmSync(out, { recursive: true, force: true });
  const result = await esbuild.build({
    entryPoints: [join(root, 'src/sdk/index.ts')],
    outfile: join(out, 'index.js'),
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    external: SDK_EXTERNAL,
    plugins: [sdkBiscuitLoader],
    logOverride: { 'package.json': 'silent' }, // biscuit-wasm's "sideEffects": "false" (a string)
    metafile: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  const bad = [];
  for (const [input, info] of Object.entries(result.metafile.inputs)) {
    if (!SDK_ALLOWED.some((re) => re.test(input))) bad.push(input);
    for (const imp of info.imports) {
      // (a relative "external" is an import of types only, which esbuild drops)
      if (imp.external && !imp.path.startsWith('.') && !imp.path.startsWith('node:') && !SDK_EXTERNAL.includes(imp.path)) bad.push(`${input} → ${imp.path}`);
    }
  }
  if (bad.length) throw new Error(`the SDK pulls in modules it must not:\n  ${bad.join('\n  ')}`);

  // Declarations: tsc over the SDK entry, then keep only the files index.d.ts reaches, with their
  // relative `.ts` specifiers rewritten to `.js` (what a consumer's TypeScript resolves).
  const tmp = join(out, '.types');
  execFileSync(
    process.execPath,
    [
      join(root, 'node_modules/typescript/bin/tsc'),
      '--project', join(pkg, 'tsconfig.types.json'),
      '--outDir', tmp,
    ],
    { cwd: root, stdio: 'inherit' },
  );
  const typesOut = join(out, 'types');
  const seen = new Set();
  const queue = ['sdk/index.d.ts'];
  while (queue.length) {
    const rel = queue.shift();
    if (seen.has(rel)) continue;
    seen.add(rel);
    const text = readFileSync(join(tmp, rel), 'utf8');
    const depth = rel.split('/').length - 1;
    const vendored = `${depth ? '../'.repeat(depth) : './'}biscuit-wasm.js`;
    const rewritten = text.replaceAll(/(['"])@biscuit-auth\/biscuit-wasm\1/g, `'${vendored}'`).replace(/((?:from|import)\s*\(?\s*['"])(\.{1,2}\/[^'"]+?)\.ts(['"])/g, (_, a, spec, b) => {
      queue.push(relative(tmp, resolve(join(tmp, dirname(rel)), `${spec}.d.ts`)));
      return `${a}${spec}.js${b}`;
    });
    mkdirSync(dirname(join(typesOut, rel)), { recursive: true });
    writeFileSync(join(typesOut, rel), rewritten);
  }
  rmSync(tmp, { recursive: true, force: true });
  for (const rel of seen) {
    const text = readFileSync(join(typesOut, rel), 'utf8');
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'".][^'"]*)['"]/g)) {
      if (!m[1].startsWith('node:') && !SDK_EXTERNAL.includes(m[1])) throw new Error(`SDK declaration ${rel} imports ${m[1]}`);
    }
  }
  writeFileSync(join(out, 'index.d.ts'), `export * from './types/sdk/index.js';\n`);
  // Biscuit's wasm (loaded next to index.js), the declarations of its glue, and its licence
  cpSync(join(BISCUIT_DIR, 'biscuit_bg.wasm'), join(out, 'biscuit_bg.wasm'));
  cpSync(join(BISCUIT_DIR, 'biscuit.d.ts'), join(typesOut, 'biscuit-wasm.d.ts'));
  cpSync(join(BISCUIT_DIR, '../LICENSE'), join(out, 'LICENSE.biscuit-wasm'));
}

try {
  if (only === 'console') await buildConsole(join(root, 'dist/console'));
  if (!only || only === 'server') await buildServer();
  if (!only || only === 'sdk') await buildSdk();
  process.stderr.write(`baton build: ${only ?? 'server + sdk'} in ${Math.round(performance.now() - started)} ms\n`);
} catch (err) {
  process.stderr.write(`baton build FAILED: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
