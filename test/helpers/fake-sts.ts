/**
 * A loopback AWS STS endpoint for tests, speaking what the real `@aws-sdk/client-sts`
 * sends: the awsQuery protocol (a SigV4-signed POST of `application/x-www-form-urlencoded`
 * `Action=AssumeRole&Version=2011-06-15&...`, answered with XML). Only `AssumeRole`.
 *
 * Why it checks so much: a fake that says yes to everything lets product code pass its
 * tests and then fail against AWS. So each request is refused for the reasons AWS would
 * refuse it, with the code, HTTP status and error XML that AWS sends, so the SDK raises
 * the same exception it would in production:
 *
 *  1. Authentication (SigV4, checked like AWS does): key id, credential scope (date,
 *     region, service `sts`), a 15-minute window around `x-amz-date`, the body hash, and
 *     the signature over the canonical request (compared in constant time).
 *  2. The action and version.
 *  3. The model's input constraints (lengths, patterns, ranges), reported as one
 *     `ValidationError` that lists every violation, like AWS's "N validation errors detected".
 *  4. The rules behind the model: the caller may assume only the configured roles
 *     (`AccessDenied`), DurationSeconds up to the role's MaxSessionDuration, the session
 *     policy's grammar (`MalformedPolicyDocument`), the `aws:` prefixes, tag keys unique
 *     regardless of case, transitive tag keys naming tags of this call, and the packed
 *     size of policy and tags (`PackedPolicyTooLarge`, approximated; see packedPercent).
 *
 * Things the fake does not model are refused rather than ignored (`FakeStsUnsupportedParameter`):
 * managed session policies (PolicyArns), ExternalId, MFA, ProvidedContexts, session credentials
 * (x-amz-security-token) and presigned (query-string) authentication.
 */
import http from 'node:http';
import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import { listenOnLoopback } from './loopback.ts';

export interface FakeStsCall {
  roleArn: string;
  roleSessionName: string;
  durationSeconds: number;
  /** The session policy, parsed. */
  policy?: unknown;
  /** The session policy exactly as sent. */
  policyText?: string;
  sourceIdentity?: string;
  tags: Array<{ key: string; value: string }>;
  transitiveTagKeys: string[];
  /** The caller's key id, taken from the signature's credential scope. */
  accessKeyId: string;
}

export interface FakeSts {
  /** `http://127.0.0.1:<port>`: pass as the client's `endpoint`. */
  url: string;
  /** Successful AssumeRole calls, oldest first. */
  calls: FakeStsCall[];
  /**
   * Make the next request that passes every check fail with this STS error code and HTTP
   * status instead (calls queue up: two calls fail the next two valid requests). A request
   * AWS would refuse anyway still gets its own error and leaves the queued failure waiting.
   */
  failNext(code: string, status: number, message?: string): void;
  close(): Promise<void>;
}

export interface FakeStsOptions {
  accessKeyId: string;
  secretAccessKey: string;
  /** The region callers must sign for. Default `us-east-1`. */
  region?: string;
  /** The roles the caller may assume, by ARN; MaxSessionDuration defaults to 3600 like IAM's. */
  roles: Record<string, { maxSessionDuration?: number }>;
}

const STS_NAMESPACE = 'https://sts.amazonaws.com/doc/2011-06-15/';
const API_VERSION = '2011-06-15';
/** AWS accepts a signature dated up to 15 minutes either side of its own clock. */
const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000;
/** Bodies are a few kilobytes at most; anything larger is not a real STS request. */
const MAX_BODY_BYTES = 256 * 1024;
/** `[\w+=,.@-]`: RoleSessionName and SourceIdentity (AWS's \w is ASCII-only, as is JavaScript's). */
const NAME_PATTERN = /^[\w+=,.@-]*$/;
/** Session tag keys and values (`\p{L}\p{Z}\p{N}_.:/=+\-@`). */
const TAG_PATTERN = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;
/** The Policy parameter is limited to tab, LF, CR and U+0020–U+00FF. */
const POLICY_CHARS = /^[\u0009\u000A\u000D\u0020-\u00FF]*$/;

/** An STS error answer: the code AWS puts in `<Code>` and the HTTP status it uses. */
class StsError extends Error {
  constructor(
    readonly code: string,
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

// ---------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------

interface Role {
  maxSessionDuration: number;
  partition: string;
  account: string;
  name: string;
  /** Stable per role, like the RoleId IAM assigns at creation. */
  roleId: string;
}

export async function startFakeSts(opts: FakeStsOptions): Promise<FakeSts> {
  const config = { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey, region: opts.region ?? 'us-east-1' };
  const roles = new Map<string, Role>();
  for (const [arn, role] of Object.entries(opts.roles)) roles.set(arn, describeRole(arn, role.maxSessionDuration ?? 3600));

  const calls: FakeStsCall[] = [];
  const injected: StsError[] = [];

  const server = http.createServer((req, res) => {
    const requestId = randomUUID();
    readBody(req)
      .then((body) => {
        const accessKeyId = verifySignature(req, body, config, Date.now());
        const request = validateAssumeRole(readParams(req, body), roles);
        const failure = injected.shift();
        if (failure) throw failure;
        const { call, xml } = issueCredentials(request, accessKeyId, requestId);
        calls.push(call);
        send(res, 200, xml, requestId);
      })
      .catch((err: unknown) => {
        // Anything else is a bug in the fake; say so in the message rather than hide it.
        const error =
          err instanceof StsError ? err : new StsError('InternalFailure', 500, `An internal error has occurred. (fake STS: ${String(err)})`);
        send(res, error.status, errorXml(error, requestId), requestId);
      });
  });
  const { url, close } = await listenOnLoopback(server);

  return {
    url,
    calls,
    failNext(code, status, message) {
      injected.push(new StsError(code, status, message ?? `${code} (injected by failNext)`));
    },
    close,
  };
}

function describeRole(arn: string, maxSessionDuration: number): Role {
  const match = /^arn:(aws[\w-]*):iam::(\d{12}):role\/(?:[\x21-\x7E]*\/)?([\w+=,.@-]{1,64})$/.exec(arn);
  if (!match) throw new Error(`fake STS: ${arn} is not an IAM role ARN (arn:aws:iam::<12 digits>:role/[path/]name)`);
  // IAM's own bounds for a role's MaxSessionDuration.
  if (!Number.isInteger(maxSessionDuration) || maxSessionDuration < 3600 || maxSessionDuration > 43200) {
    throw new Error(`fake STS: maxSessionDuration of ${arn} must be an integer from 3600 to 43200`);
  }
  const digest = createHash('sha256').update(arn).digest();
  return {
    maxSessionDuration,
    partition: match[1]!,
    account: match[2]!,
    name: match[3]!,
    roleId: `AROA${base32(digest).slice(0, 17)}`,
  };
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on('end', () =>
      size > MAX_BODY_BYTES ? reject(new StsError('ValidationError', 400, 'Request body too large.')) : resolve(Buffer.concat(chunks)),
    );
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, status: number, xml: string, requestId: string): void {
  // The SDK reads $metadata.requestId from this header. Node adds `Date`, which the SDK
  // uses to correct its clock after a "Signature expired" answer, as it does against AWS.
  res.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-requestid': requestId });
  res.end(xml);
}

// ---------------------------------------------------------------------------------------
// 1. SigV4
// ---------------------------------------------------------------------------------------

interface Authorization {
  accessKeyId: string;
  scopeDate: string;
  scopeRegion: string;
  scopeService: string;
  scopeTerminator: string;
  signedHeaders: string[];
  signature: string;
}

const SIGNATURE_MISMATCH =
  'The request signature we calculated does not match the signature you provided. ' +
  'Check your AWS Secret Access Key and signing method. Consult the service documentation for details.';

/** Checks the request's SigV4 signature as AWS does; returns the caller's key id. */
function verifySignature(
  req: http.IncomingMessage,
  body: Buffer,
  config: { accessKeyId: string; secretAccessKey: string; region: string },
  now: number,
): string {
  const header = req.headers.authorization;
  if (header === undefined) {
    // Presigned (query-string) authentication is not supported, so it lands here too.
    throw new StsError('MissingAuthenticationToken', 403, 'Request is missing Authentication Token');
  }
  const auth = parseAuthorization(header);

  if (auth.accessKeyId !== config.accessKeyId) {
    throw new StsError('InvalidClientTokenId', 403, 'The security token included in the request is invalid.');
  }
  if (req.headers['x-amz-security-token'] !== undefined) {
    // Only the configured long-term key exists here, so no session token can be valid.
    throw new StsError('InvalidClientTokenId', 403, 'The security token included in the request is invalid.');
  }

  const amzDate = req.headers['x-amz-date'];
  if (typeof amzDate !== 'string') {
    throw new StsError('IncompleteSignature', 400, "Authorization header requires existence of a 'X-Amz-Date' header.");
  }
  const signedAt = parseAmzDate(amzDate);
  if (!auth.signedHeaders.includes('host')) {
    throw new StsError('IncompleteSignature', 400, "'Host' must be a 'SignedHeader' in the AWS Authorization.");
  }
  checkScope(auth, amzDate, config.region);
  checkClock(signedAt, amzDate, now);

  // AWS hashes the body it received. The SDK also sends that hash as x-amz-content-sha256;
  // a header that disagrees with the body means the body changed after signing.
  const bodyHash = sha256Hex(body);
  const declared = req.headers['x-amz-content-sha256'];
  if (declared !== undefined && declared !== bodyHash) {
    throw new StsError('SignatureDoesNotMatch', 403, "The provided 'x-amz-content-sha256' header does not match what was computed.");
  }

  const scope = `${auth.scopeDate}/${auth.scopeRegion}/${auth.scopeService}/${auth.scopeTerminator}`;
  const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonicalRequest(req, auth.signedHeaders, bodyHash))].join('\n');
  const expected = hmac(signingKey(config.secretAccessKey, auth.scopeDate, auth.scopeRegion, auth.scopeService), stringToSign);
  const provided = /^[0-9a-f]{64}$/.test(auth.signature) ? Buffer.from(auth.signature, 'hex') : Buffer.alloc(0);
  if (provided.length !== expected.length || !timingSafeEqual(provided, expected)) {
    throw new StsError('SignatureDoesNotMatch', 403, SIGNATURE_MISMATCH);
  }
  return auth.accessKeyId;
}

/** `AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/sts/aws4_request, SignedHeaders=a;b, Signature=hex` */
function parseAuthorization(header: string): Authorization {
  const incomplete = (why: string) => new StsError('IncompleteSignature', 400, `${why} Authorization=${header}`);
  const space = header.indexOf(' ');
  const algorithm = space < 0 ? header : header.slice(0, space);
  if (algorithm !== 'AWS4-HMAC-SHA256') throw incomplete(`Unsupported AWS 'algorithm': '${algorithm}'.`);

  const fields = new Map<string, string>();
  for (const part of header.slice(space + 1).split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) throw incomplete(`'${part.trim()}' not a valid key=value pair (missing equal-sign) in Authorization header.`);
    fields.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (credential === undefined || signedHeaders === undefined || signature === undefined) {
    throw incomplete('Authorization header requires \'Credential\', \'SignedHeaders\' and \'Signature\' parameters.');
  }
  const scope = credential.split('/');
  if (scope.length !== 5) throw incomplete(`Credential '${credential}' is not of the form AKID/date/region/service/aws4_request.`);
  const [accessKeyId, scopeDate, scopeRegion, scopeService, scopeTerminator] = scope as [string, string, string, string, string];
  return { accessKeyId, scopeDate, scopeRegion, scopeService, scopeTerminator, signedHeaders: signedHeaders.split(';'), signature };
}

function parseAmzDate(amzDate: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
  if (!m) throw new StsError('IncompleteSignature', 400, `Date must be in ISO-8601 'basic format'. Got '${amzDate}'.`);
  const [, y, mo, d, h, mi, s] = m.map(Number) as [number, number, number, number, number, number, number];
  return Date.UTC(y, mo - 1, d, h, mi, s);
}

/** The credential scope must name the request's day, this endpoint's region and `sts`. */
function checkScope(auth: Authorization, amzDate: string, region: string): void {
  if (auth.scopeDate !== amzDate.slice(0, 8)) {
    throw new StsError(
      'SignatureDoesNotMatch',
      403,
      'Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: ' +
        `'${auth.scopeDate}' != '${amzDate.slice(0, 8)}', from '${amzDate}'.`,
    );
  }
  if (auth.scopeRegion !== region) {
    throw new StsError('SignatureDoesNotMatch', 403, `Credential should be scoped to a valid region, not '${auth.scopeRegion}'.`);
  }
  if (auth.scopeService !== 'sts') {
    throw new StsError('SignatureDoesNotMatch', 403, `Credential should be scoped to correct service: 'sts', not '${auth.scopeService}'.`);
  }
  if (auth.scopeTerminator !== 'aws4_request') {
    throw new StsError('SignatureDoesNotMatch', 403, `Credential should be scoped with a valid terminator: 'aws4_request', not '${auth.scopeTerminator}'.`);
  }
}

/** A signature is good for 15 minutes either side of the server's clock (a replay bound). */
function checkClock(signedAt: number, amzDate: string, now: number): void {
  if (signedAt < now - MAX_CLOCK_SKEW_MS) {
    throw new StsError(
      'SignatureDoesNotMatch',
      403,
      `Signature expired: ${amzDate} is now earlier than ${basicDate(now - MAX_CLOCK_SKEW_MS)} (${basicDate(now)} - 15 min.)`,
    );
  }
  if (signedAt > now + MAX_CLOCK_SKEW_MS) {
    throw new StsError(
      'SignatureDoesNotMatch',
      403,
      `Signature not yet current: ${amzDate} is still later than ${basicDate(now + MAX_CLOCK_SKEW_MS)} (${basicDate(now)} + 15 min.)`,
    );
  }
}

/**
 * The canonical request, rebuilt from what arrived on the wire:
 * method, canonical URI, canonical query, canonical headers, signed header list, body hash.
 */
function canonicalRequest(req: http.IncomingMessage, signedHeaders: string[], bodyHash: string): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q + 1);
  const headers = signedHeaders.map((name) => `${name}:${canonicalHeaderValue(req, name)}\n`).join('');
  return [req.method ?? 'POST', canonicalUri(path), canonicalQuery(query), headers, signedHeaders.join(';'), bodyHash].join('\n');
}

/**
 * Services other than S3 normalise the path (drop empty and `.` segments, resolve `..`) and
 * URI-encode it once more on top of the encoding it travelled in.
 */
function canonicalUri(wirePath: string): string {
  const segments: string[] = [];
  for (const segment of wirePath.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  const normalized = `/${segments.join('/')}${segments.length > 0 && wirePath.endsWith('/') ? '/' : ''}`;
  return uriEncode(normalized).replace(/%2F/g, '/');
}

/** Parameters decoded, re-encoded with RFC 3986 rules, sorted by name then value. */
function canonicalQuery(rawQuery: string): string {
  if (rawQuery === '') return '';
  const pairs = rawQuery
    .split('&')
    .filter((p) => p !== '')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const key = eq < 0 ? pair : pair.slice(0, eq);
      const value = eq < 0 ? '' : pair.slice(eq + 1);
      return [uriEncode(percentDecode(key)), uriEncode(percentDecode(value))] as const;
    })
    .filter(([key]) => key !== 'X-Amz-Signature');
  pairs.sort(([ak, av], [bk, bv]) => (ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join('&');
}

/** Repeated headers joined with commas; each value trimmed, inner runs of spaces folded to one. */
function canonicalHeaderValue(req: http.IncomingMessage, name: string): string {
  const values = req.headersDistinct[name] ?? [];
  return values.map((v) => v.trim().replace(/\s+/g, ' ')).join(',');
}

function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  const kDate = hmac(`AWS4${secret}`, date);
  const kRegion = hmac(kDate, region);
  const kService = hmac(kRegion, service);
  return hmac(kService, 'aws4_request');
}

/** RFC 3986 unreserved characters stay; everything else is %XX (upper-case hex). */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function percentDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new StsError('IncompleteSignature', 400, `Malformed percent-encoding in query string: '${s}'.`);
  }
}

// ---------------------------------------------------------------------------------------
// 2. The request: action, model constraints, then AssumeRole's own rules
// ---------------------------------------------------------------------------------------

interface AssumeRoleRequest {
  roleArn: string;
  role: Role;
  roleSessionName: string;
  durationSeconds: number;
  policyText?: string;
  policy?: unknown;
  sourceIdentity?: string;
  tags: Array<{ key: string; value: string }>;
  transitiveTagKeys: string[];
  packedPolicySize?: number;
}

/** Query protocol parameters: from the form body of a POST, or from the query string. */
function readParams(req: http.IncomingMessage, body: Buffer): Map<string, string> {
  const params = new Map<string, string>();
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const sources = [q < 0 ? '' : url.slice(q + 1)];
  if ((req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) sources.push(body.toString('utf8'));
  for (const source of sources) {
    for (const [key, value] of new URLSearchParams(source)) if (!params.has(key)) params.set(key, value);
  }
  return params;
}

const SUPPORTED_PARAMS = new Set([
  ...['Action', 'Version', 'RoleArn', 'RoleSessionName', 'DurationSeconds'],
  ...['Policy', 'SourceIdentity', 'Tags', 'TransitiveTagKeys'],
]);

function validateAssumeRole(params: Map<string, string>, roles: Map<string, Role>): AssumeRoleRequest {
  const action = params.get('Action');
  if (action === undefined) throw new StsError('MissingAction', 400, 'Missing Action');
  const version = params.get('Version');
  if (action !== 'AssumeRole' || version !== API_VERSION) {
    throw new StsError('InvalidAction', 400, `Could not find operation ${action} for version ${version ?? 'NO_VERSION_SPECIFIED'}`);
  }
  for (const key of params.keys()) {
    const base = key.split('.')[0]!;
    if (!SUPPORTED_PARAMS.has(base)) {
      // Not an AWS error: the fake cannot judge this parameter, and ignoring it would pass
      // requests AWS might refuse (PolicyArns, ExternalId, SerialNumber, TokenCode, ...).
      throw new StsError('FakeStsUnsupportedParameter', 400, `The fake STS does not model the parameter ${key}.`);
    }
  }

  const roleArn = params.get('RoleArn');
  const roleSessionName = params.get('RoleSessionName');
  const durationText = params.get('DurationSeconds');
  const policyText = params.get('Policy');
  const sourceIdentity = params.get('SourceIdentity');
  const tags = readTags(params);
  const transitiveTagKeys = readList(params, 'TransitiveTagKeys');

  const violations = [
    ...checkString('roleArn', roleArn, { required: true, min: 20, max: 2048 }),
    ...checkString('roleSessionName', roleSessionName, { required: true, min: 2, max: 64, pattern: NAME_PATTERN, patternText: '[\\w+=,.@-]*' }),
    ...checkDuration(durationText),
    ...checkString('policy', policyText, { min: 1, max: 2048, pattern: POLICY_CHARS, patternText: '[\\u0009\\u000A\\u000D\\u0020-\\u00FF]+' }),
    // AWS reserves SourceIdentity values starting with aws:, but ':' is outside the pattern anyway.
    ...checkString('sourceIdentity', sourceIdentity, { min: 2, max: 64, pattern: NAME_PATTERN, patternText: '[\\w+=,.@-]*' }),
    ...checkTags(tags),
    ...checkTransitiveTagKeys(transitiveTagKeys),
  ];
  if (violations.length > 0) {
    const count = violations.length === 1 ? '1 validation error detected' : `${violations.length} validation errors detected`;
    throw new StsError('ValidationError', 400, `${count}: ${violations.join('; ')}`);
  }

  // From here on the input has the model's shape; what follows are AssumeRole's own rules.
  const role = roles.get(roleArn!);
  if (role === undefined) {
    // AWS answers the same whether the role is missing or its trust policy says no.
    throw new StsError(
      'AccessDenied',
      403,
      `User: arn:aws:iam::000000000000:user/fake-sts-caller is not authorized to perform: sts:AssumeRole on resource: ${roleArn}`,
    );
  }
  const durationSeconds = durationText === undefined ? 3600 : Number(durationText);
  if (durationSeconds > role.maxSessionDuration) {
    throw new StsError('ValidationError', 400, 'The requested DurationSeconds exceeds the MaxSessionDuration set for this role.');
  }
  const policy = policyText === undefined ? undefined : checkPolicyDocument(policyText);
  const tagList = tags ?? [];
  checkTagRules(tagList, transitiveTagKeys ?? []);
  const packedPolicySize = policyText === undefined && tagList.length === 0 ? undefined : packedPercent(policy, tagList);
  if (packedPolicySize !== undefined && packedPolicySize > 100) {
    throw new StsError('PackedPolicyTooLarge', 400, `Packed policy consumes ${packedPolicySize}% of allotted space, please use smaller policy.`);
  }

  return {
    roleArn: roleArn!,
    role,
    roleSessionName: roleSessionName!,
    durationSeconds,
    ...(policyText !== undefined ? { policyText, policy } : {}),
    ...(sourceIdentity !== undefined ? { sourceIdentity } : {}),
    tags: tagList,
    transitiveTagKeys: transitiveTagKeys ?? [],
    ...(packedPolicySize !== undefined ? { packedPolicySize } : {}),
  };
}

/** `Name.member.N` entries in N order; `Name=` (how the SDK sends []) is an empty list. */
function readList(params: Map<string, string>, name: string): string[] | undefined {
  const entries: Array<[number, string]> = [];
  for (const [key, value] of params) {
    const m = new RegExp(`^${name}\\.member\\.(\\d+)$`).exec(key);
    if (m) entries.push([Number(m[1]), value]);
  }
  if (entries.length === 0) return params.has(name) ? [] : undefined;
  return entries.sort((a, b) => a[0] - b[0]).map(([, v]) => v);
}

/** `Tags.member.N.Key` / `.Value`; a missing Key or Value stays undefined for the null check. */
function readTags(params: Map<string, string>): Array<{ key?: string; value?: string }> | undefined {
  const byIndex = new Map<number, { key?: string; value?: string }>();
  for (const [param, text] of params) {
    const m = /^Tags\.member\.(\d+)\.(Key|Value)$/.exec(param);
    if (!m) continue;
    const tag = byIndex.get(Number(m[1])) ?? {};
    if (m[2] === 'Key') tag.key = text;
    else tag.value = text;
    byIndex.set(Number(m[1]), tag);
  }
  if (byIndex.size === 0) return params.has('Tags') ? [] : undefined;
  return [...byIndex.entries()].sort((a, b) => a[0] - b[0]).map(([, tag]) => tag);
}

/** One line of AWS's ValidationError: "Value 'x' at 'field' failed to satisfy constraint: ..." */
function violation(field: string, value: string | undefined, constraint: string): string {
  const shown = value === undefined ? 'null' : `'${value}'`;
  return `Value ${shown} at '${field}' failed to satisfy constraint: ${constraint}`;
}

function checkString(
  field: string,
  value: string | undefined,
  rule: { required?: boolean; min: number; max: number; pattern?: RegExp; patternText?: string },
): string[] {
  if (value === undefined) return rule.required ? [violation(field, value, 'Member must not be null')] : [];
  const out: string[] = [];
  // AWS counts characters (code points), not UTF-16 units or bytes.
  const length = [...value].length;
  if (length < rule.min) out.push(violation(field, value, `Member must have length greater than or equal to ${rule.min}`));
  if (length > rule.max) out.push(violation(field, value, `Member must have length less than or equal to ${rule.max}`));
  if (rule.pattern && !rule.pattern.test(value)) {
    out.push(violation(field, value, `Member must satisfy regular expression pattern: ${rule.patternText}`));
  }
  return out;
}

function checkDuration(text: string | undefined): string[] {
  if (text === undefined) return [];
  if (!/^-?\d+$/.test(text)) return [violation('durationSeconds', text, 'Member must be an integer')];
  const n = Number(text);
  if (n < 900) return [violation('durationSeconds', text, 'Member must have value greater than or equal to 900')];
  if (n > 43200) return [violation('durationSeconds', text, 'Member must have value less than or equal to 43200')];
  return [];
}

const TAG_KEY_RULE = { min: 1, max: 128, pattern: TAG_PATTERN, patternText: '[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]+' };
const TAG_VALUE_RULE = { min: 0, max: 256, pattern: TAG_PATTERN, patternText: '[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*' };

function checkTags(tags: Array<{ key?: string; value?: string }> | undefined): string[] {
  if (tags === undefined) return [];
  if (tags.length > 50) return [violation('tags', `[${tags.length} tags]`, 'Member must have length less than or equal to 50')];
  return tags.flatMap((tag, i) => [
    ...checkString(`tags.${i + 1}.member.key`, tag.key, { required: true, ...TAG_KEY_RULE }),
    ...checkString(`tags.${i + 1}.member.value`, tag.value, { required: true, ...TAG_VALUE_RULE }),
  ]);
}

function checkTransitiveTagKeys(keys: string[] | undefined): string[] {
  if (keys === undefined) return [];
  if (keys.length > 50) return [violation('transitiveTagKeys', `[${keys.length} keys]`, 'Member must have length less than or equal to 50')];
  return keys.flatMap((key, i) => checkString(`transitiveTagKeys.${i + 1}.member`, key, TAG_KEY_RULE));
}

/**
 * Rules on tags beyond the model. Tag keys are case-insensitive in AWS (Department and
 * department are one key), `aws:` is reserved, and a transitive key must name a tag of this
 * call. The error code for these is not documented; InvalidParameterValue is AWS's common
 * code for "a value that is well-formed but not allowed".
 */
function checkTagRules(
  tags: Array<{ key?: string; value?: string }>,
  transitiveTagKeys: string[],
): asserts tags is Array<{ key: string; value: string }> {
  const seen = new Set<string>();
  for (const tag of tags) {
    const folded = tag.key!.toLowerCase();
    if (folded.startsWith('aws:')) {
      throw new StsError('InvalidParameterValue', 400, `Tag key ${tag.key} uses the reserved prefix 'aws:'.`);
    }
    if (seen.has(folded)) {
      throw new StsError('InvalidParameterValue', 400, 'Duplicate tag keys found. Please note that Tag keys are case insensitive.');
    }
    seen.add(folded);
  }
  for (const key of transitiveTagKeys) {
    if (!seen.has(key.toLowerCase())) {
      throw new StsError('InvalidParameterValue', 400, `The transitive tag key ${key} is not among the session tags of this request.`);
    }
  }
}

/**
 * The session policy's grammar, as IAM checks an identity policy, with IAM's messages:
 * JSON object; only Version, Id, Statement at the top; Version (optional) 2012-10-17 or
 * 2008-10-17; Statement one statement or a non-empty array of them; each statement with
 * Effect Allow|Deny, Action or NotAction (vendor-prefixed strings), Resource or NotResource
 * (ARNs or "*"), and no Principal (a session policy applies to the session itself).
 */
function checkPolicyDocument(text: string): unknown {
  const malformed = (message: string) => new StsError('MalformedPolicyDocument', 400, message);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw malformed('The policy is not in the valid JSON format.');
  }
  if (!isObject(doc)) throw malformed('The policy is not in the valid JSON format.');
  if (Object.keys(doc).some((k) => !['Version', 'Id', 'Statement'].includes(k))) throw malformed('Syntax errors in policy.');
  if ('Version' in doc && doc.Version !== '2012-10-17' && doc.Version !== '2008-10-17') {
    throw malformed('The policy must contain a valid version string');
  }
  const statements = Array.isArray(doc.Statement) ? doc.Statement : isObject(doc.Statement) ? [doc.Statement] : undefined;
  if (statements === undefined || statements.length === 0) throw malformed('Syntax errors in policy.');
  for (const statement of statements) checkStatement(statement, malformed);
  return doc;
}

const STATEMENT_KEYS = ['Sid', 'Effect', 'Action', 'NotAction', 'Resource', 'NotResource', 'Condition', 'Principal', 'NotPrincipal'];

function checkStatement(statement: unknown, malformed: (message: string) => StsError): void {
  if (!isObject(statement) || Object.keys(statement).some((k) => !STATEMENT_KEYS.includes(k))) throw malformed('Syntax errors in policy.');
  if ('Principal' in statement || 'NotPrincipal' in statement) throw malformed('Policy document should not specify a principal.');
  if (statement.Effect !== 'Allow' && statement.Effect !== 'Deny') {
    throw malformed(statement.Effect === undefined ? 'Policy statement must contain an effect.' : 'Invalid effect: ' + String(statement.Effect));
  }
  const actions = stringOrList(statement.Action ?? statement.NotAction);
  if (actions === undefined || ('Action' in statement && 'NotAction' in statement)) throw malformed('Policy statement must contain actions.');
  for (const action of actions) {
    if (action !== '*' && !/^[\w-]+:[\w*?-]+$/.test(action)) {
      throw malformed('Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.');
    }
  }
  const resources = stringOrList(statement.Resource ?? statement.NotResource);
  if (resources === undefined || ('Resource' in statement && 'NotResource' in statement)) throw malformed('Policy statement must contain resources.');
  for (const resource of resources) {
    if (resource !== '*' && !/^arn:[^:]*:[^:]*:/.test(resource)) throw malformed(`Resource ${resource} must be in ARN format or "*".`);
  }
  if ('Condition' in statement && !isObject(statement.Condition)) throw malformed('Syntax errors in policy.');
}

function stringOrList(value: unknown): string[] | undefined {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string')) return value as string[];
  return undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Bytes of the packed form that count as 100%; see packedPercent. */
const PACKED_BUDGET_BYTES = 450;

/**
 * AWS packs the session policy and session tags into an undocumented compressed binary
 * form with its own limit, reported as PackedPolicySize (percent of the limit) and refused
 * above 100% with PackedPolicyTooLarge, even when the 2048-character plaintext limit is met.
 *
 * The approximation, deterministic and only that: the minified policy (JSON.stringify of
 * the parsed document, since whitespace is not packed), then one "key=value" line per tag,
 * compressed with raw DEFLATE at level 9; its size against a budget of 450 bytes, rounded
 * up to a whole percent. The budget comes from publicly reported AWS answers for broad
 * policies (a ~970-character policy of 18 actions at ~80%; ~1,600-1,700 characters of
 * 31-42 actions over 100%), which this reproduces within some 15 points. It makes
 * repetitive text cheap and varied text (many actions, random tag values) expensive, as
 * AWS's packing does; exact percentages will differ from AWS's.
 */
function packedPercent(policy: unknown, tags: Array<{ key: string; value: string }>): number {
  const text = (policy === undefined ? '' : JSON.stringify(policy)) + tags.map((t) => `\n${t.key}=${t.value}`).join('');
  const bytes = deflateRawSync(Buffer.from(text, 'utf8'), { level: 9 }).length;
  return Math.ceil((100 * bytes) / PACKED_BUDGET_BYTES);
}

// ---------------------------------------------------------------------------------------
// 3. The answers
// ---------------------------------------------------------------------------------------

function issueCredentials(request: AssumeRoleRequest, accessKeyId: string, requestId: string): { call: FakeStsCall; xml: string } {
  const { role } = request;
  const expiration = new Date(Date.now() + request.durationSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const credentials = {
    AccessKeyId: `ASIA${base32(randomBytes(10)).slice(0, 16)}`,
    SecretAccessKey: randomBytes(30).toString('base64'),
    SessionToken: randomBytes(300).toString('base64'),
    Expiration: expiration,
  };
  const assumedRoleArn = `arn:${role.partition}:sts::${role.account}:assumed-role/${role.name}/${request.roleSessionName}`;

  const call: FakeStsCall = {
    roleArn: request.roleArn,
    roleSessionName: request.roleSessionName,
    durationSeconds: request.durationSeconds,
    ...(request.policyText !== undefined ? { policy: request.policy, policyText: request.policyText } : {}),
    ...(request.sourceIdentity !== undefined ? { sourceIdentity: request.sourceIdentity } : {}),
    tags: request.tags,
    transitiveTagKeys: request.transitiveTagKeys,
    accessKeyId,
  };

  const xml =
    `<AssumeRoleResponse xmlns="${STS_NAMESPACE}">` +
    '<AssumeRoleResult>' +
    (request.sourceIdentity !== undefined ? element('SourceIdentity', request.sourceIdentity) : '') +
    '<AssumedRoleUser>' +
    element('AssumedRoleId', `${role.roleId}:${request.roleSessionName}`) +
    element('Arn', assumedRoleArn) +
    '</AssumedRoleUser>' +
    '<Credentials>' +
    Object.entries(credentials)
      .map(([name, value]) => element(name, value))
      .join('') +
    '</Credentials>' +
    (request.packedPolicySize !== undefined ? element('PackedPolicySize', String(request.packedPolicySize)) : '') +
    '</AssumeRoleResult>' +
    `<ResponseMetadata>${element('RequestId', requestId)}</ResponseMetadata>` +
    '</AssumeRoleResponse>';
  return { call, xml };
}

/** The awsQuery error body; Type is Sender for the caller's faults, Receiver for the service's. */
function errorXml(error: StsError, requestId: string): string {
  return (
    `<ErrorResponse xmlns="${STS_NAMESPACE}">` +
    '<Error>' +
    element('Type', error.status >= 500 ? 'Receiver' : 'Sender') +
    element('Code', error.code) +
    element('Message', error.message) +
    '</Error>' +
    element('RequestId', requestId) +
    '</ErrorResponse>'
  );
}

function element(name: string, text: string): string {
  return `<${name}>${xmlEscape(text)}</${name}>`;
}

function xmlEscape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

// ---------------------------------------------------------------------------------------
// Small utilities
// ---------------------------------------------------------------------------------------

function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

/** 20240101T000000Z */
function basicDate(ms: number): string {
  return new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

/** RFC 4648 base32 (A-Z, 2-7): the alphabet of AWS access key ids. */
function base32(bytes: Buffer): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let out = '';
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}
