import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Keyring } from '../../src/keys/keyring.ts';

describe('keyring', () => {
  it('creates a 0600 key file with one active key, and rotates keeping the old key verifying', () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-keys-'));
    const path = join(dir, 'sub', 'keys.json');
    const ring = Keyring.open(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'sub')).mode & 0o777).toBe(0o700);
    expect(ring.published().map((k) => [k.id, k.status])).toEqual([[1, 'active']]);
    expect(ring.rotate()).toBe(2);
    const reopened = Keyring.open(path);
    expect(reopened.published().map((k) => [k.id, k.status])).toEqual([[1, 'verify'], [2, 'active']]);
    expect(reopened.signingKey().id).toBe(2);
    reopened.retire(1);
    expect(Keyring.open(path).publicKey(1)).toBeUndefined();
    expect(() => reopened.retire(2)).toThrow(/active key cannot be retired/);
    expect(readFileSync(path, 'utf8')).not.toMatch(/retired.*\n.*active.*\n.*active/);
  });
  it('follows a rotation made by another process (baton keys rotate) and reports it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-keys-'));
    const path = join(dir, 'keys.json');
    const broker = Keyring.open(path);
    expect(broker.reloadIfChanged()).toBeUndefined();
    await new Promise((r) => setTimeout(r, 20)); // a distinct mtime
    const cli = Keyring.open(path);
    cli.rotate();
    expect(broker.reloadIfChanged()).toEqual({ from: 1, to: 2 });
    expect(broker.signingKey().id).toBe(2);
    expect(broker.publicKey(1)).toBeDefined();
    expect(broker.reloadIfChanged()).toBeUndefined();
  });

  it('refuses a tampered keyring file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-keys-'));
    const path = join(dir, 'keys.json');
    Keyring.open(path);
    const doc = JSON.parse(readFileSync(path, 'utf8'));
    doc.keys[0].status = 'verify';
    writeFileSync(path, JSON.stringify(doc));
    expect(() => Keyring.open(path)).toThrow(/exactly one active key/);
  });

  it('reports changes of the published set (has, tag, onChange), including a retirement by another process', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-keys-'));
    const path = join(dir, 'keys.json');
    const broker = Keyring.open(path);
    const seen: number[][] = [];
    broker.onChange((published) => seen.push(published.map((k) => k.id)));
    const tag1 = broker.tag;
    broker.rotate();
    expect(broker.has(1) && broker.has(2)).toBe(true);
    expect(broker.tag).not.toBe(tag1);
    await new Promise((r) => setTimeout(r, 20)); // a distinct mtime
    Keyring.open(path).retire(1); // `baton keys retire 1`
    expect(broker.has(1)).toBe(true); // not yet reloaded
    expect(broker.reloadIfChanged()).toBeUndefined(); // the active key did not change…
    expect(broker.has(1)).toBe(false); // …but the retirement is in force
    expect(seen).toEqual([[1, 2], [2]]);
    const tag = broker.tag;
    await new Promise((r) => setTimeout(r, 20));
    writeFileSync(path, readFileSync(path)); // touched, same content: no change reported
    broker.reloadIfChanged();
    expect(broker.tag).toBe(tag);
    expect(seen).toHaveLength(2);
  });
});
