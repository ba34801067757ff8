/**
 * The agent SDK: exchange an OIDC token, attenuate offline, inspect. Importable as `baton/sdk`; it
 * pulls in no server code.
 */
export { exchange, ExchangeError, type ExchangeOptions } from './exchange.ts';
export { attenuate, type AttenuateOptions } from '../token/attenuate.ts';
export { inspect, type Inspection, type InspectOptions } from './inspect.ts';
export { BatonError, type ErrorCode } from '../errors.ts';
export type { LineageLink, EffectiveRights } from '../token/lineage.ts';
