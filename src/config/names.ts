/** Names the configuration gives things, shared with code that must not load zod (the CLI). */

/** An upstream's name (`proxy.upstreams.<name>`, the database name clients connect to). */
export const UPSTREAM_NAME = /^[A-Za-z0-9_-]+$/;
