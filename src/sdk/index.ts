/**
 * The agent SDK: exchange an OIDC token, attenuate offline, inspect. Published as `@batonhq/sdk`
 * (packages/sdk, built by bin/build.mjs); it pulls in no server code — the build checks that.
 */
export { exchange, ExchangeError, type ExchangeOptions } from './exchange.ts';
export { attenuate, type AttenuateOptions } from '../token/attenuate.ts';
export { inspect, type Inspection, type InspectOptions } from './inspect.ts';
export { BatonError, type ErrorCode } from '../errors.ts';
export { parseKeySet, keySetResolver, type KeySetDocument, type KeySetKey, type KeyResolver } from './key-set.ts';
export { GRANT_TYPE_TOKEN_EXCHANGE, TOKEN_TYPE_BATON } from './protocol.ts';
export type { LineageLink, EffectiveRights } from '../token/lineage.ts';
