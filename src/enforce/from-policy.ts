/**
 * The proxy's masking and approval settings from the grant policy file and config: one place, so
 * `baton dev` and `baton proxy` enforce the same thing.
 */
import type { ApprovalDesk } from '../approvals/desk.ts';
import type { PolicyFile } from '../policy/schema.ts';
import type { BatonGateDeps } from '../proxy/pg/baton-gate.ts';
import { compileDetectors } from './masking/detectors.ts';
import { maskingHmacKey } from './masking/hmac-key.ts';

export interface EnforcementOptions {
  dataDir: string;
  /** `masking.hmacKey` from config, if set. */
  hmacKey?: string;
  /** Where held statements are recorded and decided; absent with approval rules = every such statement refused. */
  desk?: ApprovalDesk;
}

export function enforcementFromPolicy(policy: PolicyFile, opts: EnforcementOptions): Pick<BatonGateDeps, 'masking' | 'approvals'> {
  const masking = policy.masking;
  const detectors = compileDetectors(masking.detectors);
  return {
    masking: { policy: masking, detectors, hmacKey: maskingHmacKey(opts.dataDir, opts.hmacKey) },
    approvals: { rules: policy.approvals.rules, ...(opts.desk ? { desk: opts.desk } : {}) },
  };
}
