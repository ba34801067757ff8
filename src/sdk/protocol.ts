/**
 * The token-exchange constants the SDK and the broker share (RFC 8693). A neutral module: the SDK
 * must not import server code, so the broker's request schema (src/broker/exchange-request.ts)
 * takes them from here.
 */
export const GRANT_TYPE_TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
export const TOKEN_TYPE_BATON = 'urn:baton:params:token-type:biscuit';
