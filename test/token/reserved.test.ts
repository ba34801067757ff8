/**
 * Only the authority block grants (DESIGN.md rule 9). A non-authority block that states the facts the
 * authorizer supplies satisfies its own checks (a block's checks trust the authority block and the
 * block itself), so lineage would report a restriction the proxy does not enforce: such tokens are
 * refused at verification.
 */
import { describe, expect, it } from 'vitest';
import { attenuate } from '../../src/token/attenuate.ts';
import { authorize } from '../../src/token/authorize.ts';
import { Biscuit, BlockBuilder, KeyPair } from '../../src/token/biscuit.ts';
import { effectiveRights, readLineage } from '../../src/token/lineage.ts';
import { verifyToken } from '../../src/token/verify.ts';
import { RESERVED_PREDICATES } from '../../src/token/vocabulary.ts';
import { appendBlock, decodeToken, pred, str, variable } from '../../src/token/wire/index.ts';
import { allowed, appendDatalog, CUSTOMERS, NOW, ORDERS, refusal, ring, rootToken } from './fixtures.ts';

const root = rootToken();


const SELF_SATISFYING = `delegated_to("helper-7");
  resource("${ORDERS}"); operation("read");
  check if resource($r), ["${ORDERS}"].contains($r);
  check if operation($op), ["read"].contains($op);`;

describe('reserved names in non-authority blocks', () => {
  it('refuses a block that states resource/operation facts to satisfy its own checks', () => {
    const forged = appendDatalog(root, SELF_SATISFYING);
    // what the attack achieves when nothing refuses it: lineage says "read on orders only" …
    expect(effectiveRights(decodeToken(forged))).toMatchObject({ resources: [ORDERS] });
    // … while the engine lets it DELETE FROM customers (its checks match its own facts)
    const publicKey = ring.publicKey(decodeToken(forged).rootKeyId!)!;
    const raw = Biscuit.fromBase64(forged, publicKey);
    publicKey.free();
    expect(authorize(raw, CUSTOMERS, 'delete', NOW).allow).toBe(true);
    raw.free();
    // so verification refuses it, naming the fact
    const refused = refusal(() => verifyToken(forged, ring));
    expect(refused?.code).toBe('BATON_ERR_TOKEN_RESERVED_NAME');
    expect(refused?.message).toMatch(/block 1 states a fact named "resource"/);
    expect(refusal(() => allowed(forged, CUSTOMERS, 'delete'))?.code).toBe('BATON_ERR_TOKEN_RESERVED_NAME');
  });

  it('reserves every name the authority block, the authorizer and its policy use', () => {
    expect([...RESERVED_PREDICATES].sort()).toEqual(
      ['agent', 'issuer', 'operation', 'query', 'resource', 'revocation_id', 'right', 'role', 'subject', 'time', 'token_id'].sort(),
    );
  });

  it.each(RESERVED_PREDICATES)('refuses a fact named %s and a rule deriving it, in any non-authority block', (name) => {
    const fact = appendBlock(root, { facts: [pred('delegated_to', str('h')), pred(name, str('x'))] });
    expect(refusal(() => verifyToken(fact, ring))?.code).toBe('BATON_ERR_TOKEN_RESERVED_NAME');
    const rule = appendBlock(root, { rules: [{ head: pred(name, variable('x')), body: [pred('delegated_to', variable('x'))], expressions: [], scopes: [] }] });
    expect(refusal(() => verifyToken(rule, ring))?.message).toMatch(new RegExp(`rule deriving "${name}"`));
    // deeper in the chain too
    const deep = appendBlock(attenuate(root, { delegateTo: 'h1', now: NOW }), { facts: [pred(name, str('x'))] });
    expect(refusal(() => verifyToken(deep, ring))?.message).toMatch(/^token refused: block 2 /);
  });

  it('refuses rules deriving lineage facts (they must be stated, not derived), accepts them stated', () => {
    for (const name of ['delegated_to', 'purpose']) {
      const rule = appendBlock(root, { rules: [{ head: pred(name, str('x')), body: [pred('custom', variable('y'))], expressions: [], scopes: [] }] });
      expect(refusal(() => verifyToken(rule, ring))?.code).toBe('BATON_ERR_TOKEN_RESERVED_NAME');
    }
    const stated = appendBlock(root, { facts: [pred('delegated_to', str('h')), pred('purpose', str('p'))] });
    expect(refusal(() => verifyToken(stated, ring))).toBeUndefined();
  });

  it('refuses a third-party block that states reserved facts', () => {
    const v = verifyToken(root, ring);
    const signer = new KeyPair();
    const block = new BlockBuilder();
    block.addCode(`approved("x"); resource("${CUSTOMERS}"); operation("delete");`);
    const request = v.biscuit.getThirdPartyRequest();
    const thirdParty = request.createBlock(signer.getPrivateKey(), block);
    const child = v.biscuit.appendThirdPartyBlock(signer.getPublicKey(), thirdParty);
    const token = child.toBase64();
    child.free();
    v.biscuit.free();
    expect(decodeToken(token).blocks[1]!.externalKey).toBeDefined();
    const refused = refusal(() => verifyToken(token, ring));
    expect(refused?.code).toBe('BATON_ERR_TOKEN_RESERVED_NAME');
    expect(refused?.message).toMatch(/block 1 \(third-party\) states a fact named "resource"/);
  });

  it('attenuate() writes only lineage facts, whatever the names it is given', () => {
    const child = attenuate(root, { resources: [ORDERS], operations: ['read'], delegateTo: 'resource("x")', purpose: 'operation', now: NOW });
    const [, block] = decodeToken(child).blocks;
    expect(block!.facts.map((f) => f.name)).toEqual(['delegated_to', 'purpose']);
    expect(block!.rules).toEqual([]);
    expect(refusal(() => verifyToken(child, ring))).toBeUndefined();
    expect(readLineage(decodeToken(child))[1]).toMatchObject({ delegatedTo: 'resource("x")', purpose: 'operation' });
  });
});
