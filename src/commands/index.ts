/** The CLI's command table. */
import type { Command } from './command.ts';
import { attenuate } from './attenuate.ts';
import { audit } from './audit.ts';
import { dev } from './dev.ts';
import { inspect } from './inspect.ts';
import { devToken } from './dev-token.ts';
import { keys } from './keys.ts';
import { migrate } from './migrate.ts';
import { proxy } from './proxy.ts';
import { revoke } from './revoke.ts';
import { serve } from './serve.ts';

export const COMMANDS: Record<string, Command> = {
  dev,
  serve,
  proxy,
  migrate,
  keys,
  'dev-token': devToken,
  attenuate,
  inspect,
  audit,
  revoke,
};
