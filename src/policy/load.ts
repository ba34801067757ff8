/** Loading the grant policy file with a clear error naming the file and the bad field. */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { PolicyFile } from './schema.ts';

export function parsePolicy(text: string, source = 'policy'): PolicyFile {
  let raw: unknown;
  try {
    raw = parseYaml(text); // YAML is a superset of JSON
  } catch (e) {
    throw new Error(`${source}: not valid YAML/JSON: ${(e as Error).message}`);
  }
  const parsed = PolicyFile.safeParse(raw);
  if (!parsed.success) throw new Error(`${source}: invalid grant policy:\n${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

export function loadPolicyFile(path: string): PolicyFile {
  return parsePolicy(readFileSync(path, 'utf8'), path);
}
