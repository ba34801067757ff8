/**
 * Loads @biscuit-auth/biscuit-wasm on Node 20.
 *
 * The package ships a bundler-target ESM entry (`import * as wasm from "./biscuit_bg.wasm"`) that Node
 * cannot import. We compile the wasm ourselves and instantiate it with the JS glue modules it imports
 * (listed by `WebAssembly.Module.imports`), then hand the instance to the glue with `__wbg_set_wasm`.
 * Everything else in Baton imports the Biscuit classes from here, never from the package.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

type Glue = typeof import('@biscuit-auth/biscuit-wasm');

const require = createRequire(import.meta.url);
// The package exports only an ESM entry, so locate its folder through the resolver's search paths.
const found = (require.resolve.paths('@biscuit-auth/biscuit-wasm') ?? [])
  .map((nodeModules) => join(nodeModules, '@biscuit-auth/biscuit-wasm/module'))
  .find((dir) => existsSync(join(dir, 'biscuit_bg.wasm')));
if (!found) throw new Error('@biscuit-auth/biscuit-wasm is not installed (run npm install)');
const moduleDir: string = found;

async function load(): Promise<Glue> {
  const glueUrl = pathToFileURL(join(moduleDir, 'biscuit_bg.js')).href;
  const glue = (await import(glueUrl)) as Glue & { __wbg_set_wasm(w: unknown): void };
  const compiled = new WebAssembly.Module(readFileSync(join(moduleDir, 'biscuit_bg.wasm')));
  const imports: Record<string, WebAssembly.ModuleImports> = {};
  for (const { module } of WebAssembly.Module.imports(compiled)) {
    if (imports[module]) continue;
    imports[module] =
      module === './biscuit_bg.js'
        ? (glue as unknown as WebAssembly.ModuleImports)
        : ((await import(pathToFileURL(join(moduleDir, module)).href)) as WebAssembly.ModuleImports);
  }
  const instance = new WebAssembly.Instance(compiled, imports);
  glue.__wbg_set_wasm(instance.exports);
  // The library's start function prints "biscuit-wasm loading" with console.log; that would corrupt
  // the stdout of CLI commands (`baton attenuate` prints only the child token), so silence it.
  const log = console.log;
  console.log = () => {};
  try {
    (instance.exports as { __wbindgen_start?: () => void }).__wbindgen_start?.();
  } finally {
    console.log = log;
  }
  return glue;
}

/** The Biscuit library, loaded once per process. */
export const biscuit: Glue = await load();

export const { Biscuit, KeyPair, PrivateKey, PublicKey, Authorizer, BlockBuilder, BiscuitBuilder } = biscuit;
export type Biscuit = InstanceType<Glue['Biscuit']>;
export type KeyPair = InstanceType<Glue['KeyPair']>;
export type PrivateKey = InstanceType<Glue['PrivateKey']>;
export type PublicKey = InstanceType<Glue['PublicKey']>;
export type Authorizer = InstanceType<Glue['Authorizer']>;
export type BlockBuilder = InstanceType<Glue['BlockBuilder']>;
export type BiscuitBuilder = InstanceType<Glue['BiscuitBuilder']>;
