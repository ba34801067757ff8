#!/usr/bin/env node
// Container healthcheck (docker-compose.yml): exits 0 when every target answers, 1 otherwise.
//   node deploy/healthcheck.mjs http://127.0.0.1:8080/healthz http://127.0.0.1:8080/readyz
// http(s):// targets must answer 2xx within the timeout; tcp://host:port targets must accept a
// connection (for a listener without an HTTP endpoint). No dependencies: it runs in the slim image.
import { connect } from 'node:net';

const TIMEOUT_MS = Number(process.env.HEALTHCHECK_TIMEOUT_MS ?? 3000);

async function check(target) {
  const url = new URL(target);
  if (url.protocol === 'tcp:') {
    await new Promise((resolve, reject) => {
      const socket = connect({ host: url.hostname, port: Number(url.port), timeout: TIMEOUT_MS });
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('timeout', () => {
        socket.destroy();
        reject(new Error('timed out'));
      });
      socket.once('error', reject);
    });
    return;
  }
  const res = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
}

const targets = process.argv.slice(2);
if (targets.length === 0) {
  process.stderr.write('usage: healthcheck.mjs URL...\n');
  process.exit(2);
}
let failed = false;
for (const target of targets) {
  try {
    await check(target);
  } catch (err) {
    failed = true;
    process.stderr.write(`unhealthy: ${target}: ${err.message}\n`);
  }
}
process.exit(failed ? 1 : 0);
