// Cloudflare Worker benchmark (the bundle scripts/build-worker makes, as deployed):
//
// 1. bundle size: the wasm module and the JS shim, raw and gzip -9 (what counts against
//    Workers' upload limit is the gzip size);
// 2. start-up under Miniflare: `new Miniflare(...)` with the bundle and its Durable
//    Object binding until the first answer of /healthz (workerd start, wasm compile,
//    configuration and key parsing, one Durable Object round trip), BENCH_STARTS runs;
// 3. resolve latency in workerd on loopback: the Worker under `wrangler dev --local`
//    (the e2e harness's server), BENCH_RESOLVES sequential resolves each with a session
//    cookie and with a bearer JWT, after a warm-up; client-side wall time per request,
//    and the CPU time of the workerd processes (user + system from /proc) divided by
//    the requests. workerd itself reports no per-request CPU time locally; this figure
//    is the whole runtime's: wrangler's proxy Worker, HTTP, the Worker and its Durable
//    Object calls, so it is an upper bound for what Cloudflare would bill as CPU.
//
// 4. one access-token verification inside workerd, the wasm verifier against WebCrypto
//    (printed before 3; see verifyRows below).
//
// Prints markdown tables. Figures are from this (shared, noisy) machine.
import { readFile, stat, mkdtemp, rm } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { descendantCpuSeconds } from './proc-cpu.mjs';

process.env.LATCHKEY_E2E_TARGET = 'workers';
const { startServer, stopAll, login, resolve, runCli } = await import('../tests/e2e/harness.mjs');
const { REPO, BUILD, COMPATIBILITY_DATE } = await import('../tests/e2e/lib/workers.mjs');

const STARTS = Number(process.env.BENCH_STARTS || 10);
const RESOLVES = Number(process.env.BENCH_RESOLVES || 500);

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]; };
const ms = (x) => x.toFixed(2);

// 1. sizes
const wasm = await readFile(path.join(BUILD, 'index_bg.wasm'));
const shim = await readFile(path.join(BUILD, 'index.js'));
console.log('| Bundle part | raw | gzip -9 |\n|---|---|---|');
console.log(`| index_bg.wasm | ${(wasm.length / 1024).toFixed(0)} KiB | ${(gzipSync(wasm, { level: 9 }).length / 1024).toFixed(0)} KiB |`);
console.log(`| index.js | ${(shim.length / 1024).toFixed(0)} KiB | ${(gzipSync(shim, { level: 9 }).length / 1024).toFixed(0)} KiB |`);

// 2. start-up under Miniflare
const { Miniflare } = await import(path.join(REPO, 'infra', 'cloudflare', 'node_modules', 'miniflare', 'dist', 'src', 'index.js'));
/** A Miniflare instance of the Worker bundle in `build`, with its Durable Object binding. */
const latchkeyMiniflare = (build, bindings) => new Miniflare({
  modules: true,
  scriptPath: path.join(build, 'index.js'),
  modulesRules: [{ type: 'ESModule', include: ['**/*.js'] }, { type: 'CompiledWasm', include: ['**/*.wasm'] }],
  compatibilityDate: COMPATIBILITY_DATE,
  durableObjects: { LATCHKEY_OBJECTS: 'LatchkeyObject' },
  bindings,
  cf: false,
});
const dir = await mkdtemp(path.join(os.tmpdir(), 'latchkey-bench-worker-'));
const init = await runCli(['init', '--data-dir', dir, '--public-origin', 'http://127.0.0.1:8787']);
if (init.code !== 0) throw new Error(init.stderr);
const bindings = {
  LATCHKEY_CONFIG: await readFile(path.join(dir, 'latchkey.yaml'), 'utf8'),
  LATCHKEY_SECRETS: await readFile(path.join(dir, 'latchkey.secrets.yaml'), 'utf8'),
  // Miniflare prints the Worker's console on this process's stdout, which is the table.
  LATCHKEY_LOG: 'error',
};
const starts = [];
for (let i = 0; i < STARTS; i++) {
  const t0 = performance.now();
  const mf = latchkeyMiniflare(BUILD, bindings);
  const res = await mf.dispatchFetch('http://127.0.0.1:8787/healthz');
  await res.text();
  starts.push(performance.now() - t0);
  if (res.status !== 200) throw new Error(`healthz answered ${res.status}`);
  await mf.dispose();
}
await rm(dir, { recursive: true, force: true });
console.log(`\n| Start-up under Miniflare (${STARTS} runs) | median | p90 |\n|---|---|---|`);
console.log(`| new Miniflare → first /healthz answer | ${ms(pct(starts, 50))} ms | ${ms(pct(starts, 90))} ms |`);

// 4. (printed before 3) signature verification inside workerd: the wasm verifier
// (jwt-simple's pure-Rust code, through the conformance build's /__bench/verify route)
// against WebCrypto (crypto.subtle.verify, in a small JS Worker), same key and token.
// Workers' clock stands still during computation, so each figure is the client's wall
// time of a request verifying N + 1 times minus one verifying once, divided by N.
const CONFORMANCE_BUILD = path.join(REPO, 'functions', 'worker', 'build-conformance');
const VERIFY_N = Number(process.env.BENCH_VERIFY_N || 200);
const WEBCRYPTO_WORKER = `
const b64 = (t) => Uint8Array.from(atob(t.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
export default {
  async fetch(req) {
    const n = Number(new URL(req.url).searchParams.get('n'));
    const { jwk, token } = await req.json();
    const rsa = jwk.kty === 'RSA';
    const key = await crypto.subtle.importKey('jwk', jwk,
      rsa ? { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' } : { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
    const [h, p, s] = token.split('.');
    const signed = new TextEncoder().encode(h + '.' + p);
    for (let i = 0; i < n; i++) {
      // The same work as the wasm side besides the signature: decode it, check it, parse the claims.
      const ok = await crypto.subtle.verify(rsa ? { name: 'RSASSA-PKCS1-v1_5' } : { name: 'ECDSA', hash: 'SHA-256' }, key, b64(s), signed);
      if (!ok) return new Response('signature rejected', { status: 400 });
      JSON.parse(new TextDecoder().decode(b64(p)));
    }
    return new Response('ok');
  },
};`;

async function verifyRows() {
  const { createSign, createPrivateKey } = await import('node:crypto');
  const rows = [];
  for (const alg of ['ES256', 'RS256']) {
    const kdir = await mkdtemp(path.join(os.tmpdir(), 'latchkey-bench-verify-'));
    try {
      const made = await runCli(['init', '--data-dir', kdir, '--public-origin', 'http://127.0.0.1:8787', '--algorithm', alg]);
      if (made.code !== 0) throw new Error(made.stderr);
      const secrets = await readFile(path.join(kdir, 'latchkey.secrets.yaml'), 'utf8');
      const jwk = JSON.parse(secrets.match(/^\s+- (\{.*"kty".*\})\s*$/m)[1]);
      // An access token as Latchkey would sign it, signed here with the same private key.
      const iss = 'http://127.0.0.1:8787';
      const now = Math.floor(Date.now() / 1000);
      const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const input = `${enc({ alg, typ: 'at+jwt', kid: jwk.kid })}.${enc({ iss, aud: [iss], sub: 'u', iat: now, exp: now + 3600, jti: 'j', client_id: 'demo', scope: 'openid' })}`;
      const signer = createSign('SHA256'); signer.update(input);
      const sig = signer.sign({ key: createPrivateKey({ key: jwk, format: 'jwk' }), dsaEncoding: 'ieee-p1363' });
      const token = `${input}.${sig.toString('base64url')}`;
      const { d, p, q, dp, dq, qi, ...publicJwk } = jwk;
      const wasm = latchkeyMiniflare(CONFORMANCE_BUILD, { LATCHKEY_SECRETS: secrets, LATCHKEY_LOG: 'error' });
      const webcrypto = new Miniflare({ modules: true, script: WEBCRYPTO_WORKER, compatibilityDate: COMPATIBILITY_DATE, cf: false });
      const call = {
        wasm: (n) => wasm.dispatchFetch(`http://x/__bench/verify?n=${n}&iss=${encodeURIComponent(iss)}`, { method: 'POST', body: token }),
        WebCrypto: (n) => webcrypto.dispatchFetch(`http://x/?n=${n}`, { method: 'POST', body: JSON.stringify({ jwk: publicJwk, token }) }),
      };
      const perVerify = {};
      for (const [name, f] of Object.entries(call)) {
        const timed = async (n) => {
          const t0 = performance.now();
          const res = await f(n);
          const text = await res.text();
          if (res.status !== 200) throw new Error(`${alg} ${name}: ${res.status} ${text}`);
          return performance.now() - t0;
        };
        await timed(VERIFY_N); // warm-up: compile, first key import
        const diffs = [];
        for (let r = 0; r < 5; r++) diffs.push(((await timed(VERIFY_N + 1)) - (await timed(1))) / VERIFY_N);
        perVerify[name] = pct(diffs, 50);
      }
      await wasm.dispose(); await webcrypto.dispose();
      rows.push(`| ${alg} | ${(perVerify.wasm * 1000).toFixed(0)} µs | ${(perVerify.WebCrypto * 1000).toFixed(0)} µs | ${(perVerify.wasm / perVerify.WebCrypto).toFixed(1)} × |`);
    } finally {
      await rm(kdir, { recursive: true, force: true });
    }
  }
  console.log(`\n| One access-token verification in workerd (median of 5 × ${VERIFY_N}) | wasm (jwt-simple, pure Rust) | WebCrypto | wasm ÷ WebCrypto |\n|---|---|---|---|`);
  for (const r of rows) console.log(r);
}
await verifyRows();

// 3. resolve latency in workerd (wrangler dev --local)
const srv = await startServer({ algorithm: 'ES256', users: [{ username: 'bench' }] });
try {
  const l = await login(srv.origin, { username: 'bench' });
  const cookie = `session=${l.browser.cookie('session')}`;
  const bearer = l.tokens.access_token;
  const rows = [];
  // GET /oauth2/jwks touches no Durable Object: the runtime's own cost per request
  // (wrangler's proxy, HTTP, the Worker's routing), the baseline for the other rows.
  const jwks = async () => {
    const res = await fetch(`${srv.origin}/oauth2/jwks`);
    await res.arrayBuffer();
    return { ag: { 'x-authgear-session-valid': res.status === 200 ? 'true' : String(res.status) } };
  };
  const cases = [
    ['GET /oauth2/jwks (no Durable Object; the baseline)', jwks],
    ['resolve, session cookie', () => resolve(srv.origin, { cookie })],
    ['resolve, bearer JWT (ES256, same token)', () => resolve(srv.origin, { bearer })],
  ];
  for (const [name, call] of cases) {
    for (let i = 0; i < 50; i++) await call();
    const times = [];
    const cpu0 = await descendantCpuSeconds((comm) => comm === 'workerd');
    for (let i = 0; i < RESOLVES; i++) {
      const t0 = performance.now();
      const r = await call();
      times.push(performance.now() - t0);
      if (r.ag['x-authgear-session-valid'] !== 'true') throw new Error(`${name}: answered ${JSON.stringify(r.ag)}`);
    }
    const cpuMs = ((await descendantCpuSeconds((comm) => comm === 'workerd')) - cpu0) * 1000 / RESOLVES;
    rows.push(`| ${name} | ${ms(pct(times, 50))} ms | ${ms(pct(times, 99))} ms | ${cpuMs.toFixed(2)} ms |`);
  }
  console.log(`\n| In workerd on loopback (${RESOLVES} sequential requests) | p50 | p99 | workerd CPU per request |\n|---|---|---|---|`);
  for (const r of rows) console.log(r);
} finally {
  await stopAll();
}
