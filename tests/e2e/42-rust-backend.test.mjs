// examples/rust-backend: the example Rust (axum) backend against a real Latchkey.
//
// The example is built here once (its own cargo workspace; target dir
// LATCHKEY_EXAMPLE_TARGET_DIR, default /root/latchkey-example-target), unless
// LATCHKEY_EXAMPLE_BIN names an already built binary. A build failure fails every
// test of this file; nothing skips.
//
// Topology: example → counting proxy → Latchkey. Latchkey's public origin (the issuer)
// is the proxy's, so discovery, the JWKS and the resolver all go through the proxy,
// which counts JWKS and resolver requests and can make the resolver unreachable.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { access, constants, mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import crypto from 'node:crypto';
import http from 'node:http';
import path from 'node:path';
import {
  startServer, baseConfig, login, revoke, resolve, req, decodeJwt, signJwt, b64url, nowSec, sleep, randomString,
} from './harness.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const MANIFEST = path.resolve(HERE, '..', '..', 'examples', 'rust-backend', 'Cargo.toml');
const TARGET_DIR = process.env.LATCHKEY_EXAMPLE_TARGET_DIR || '/root/latchkey-example-target';
const EXAMPLE_BIN = process.env.LATCHKEY_EXAMPLE_BIN || path.join(TARGET_DIR, 'debug', 'latchkey-example-backend');
// A cold build of the example (axum, tokio, hyper, jwt-simple) takes minutes on a small machine.
const BUILD_TIMEOUT_MS = 30 * 60 * 1000;
// Short, so the test can wait it out; the example's default is 30 s.
const COOLDOWN_S = 2;

const children = new Set();
process.on('exit', () => {
  for (const p of children) {
    try { p.kill('SIGKILL'); } catch { /* gone */ }
  }
});

function run(cmd, args, { env, timeoutMs }) {
  return new Promise((resolvePromise, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    children.add(p);
    let out = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`${cmd} ${args.join(' ')}: timed out\n${out.slice(-4000)}`)); }, timeoutMs);
    p.on('error', (e) => { clearTimeout(timer); children.delete(p); reject(new Error(`${cmd}: ${e.message}`)); });
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      children.delete(p);
      if (code === 0) resolvePromise(out);
      else reject(new Error(`${cmd} ${args.join(' ')} exited ${code} (signal ${signal})\n${out.slice(-4000)}`));
    });
  });
}

async function buildExample() {
  if (!process.env.LATCHKEY_EXAMPLE_BIN) {
    await run('cargo', ['build', '--locked', '--manifest-path', MANIFEST], {
      env: { CARGO_TARGET_DIR: TARGET_DIR },
      timeoutMs: BUILD_TIMEOUT_MS,
    });
  }
  try {
    await access(EXAMPLE_BIN, constants.X_OK);
  } catch {
    throw new Error(`example binary not found or not executable at ${EXAMPLE_BIN}`);
  }
}

/** Start the example; resolves {origin, logs(), stop(), exited} once it prints its address. */
function startExample(issuer, extraArgs = []) {
  const p = spawn(EXAMPLE_BIN, ['--issuer', issuer, '--listen', '127.0.0.1:0', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: 'info', RUST_BACKTRACE: '1' },
  });
  children.add(p);
  const h = { proc: p, log: '', exitCode: undefined, exitSignal: undefined };
  h.logs = () => h.log;
  h.exited = new Promise((r) => p.on('close', (code, signal) => {
    children.delete(p);
    h.exitCode = code;
    h.exitSignal = signal;
    r({ code, signal });
  }));
  p.stdout.on('data', (d) => { h.log += d; });
  p.stderr.on('data', (d) => { h.log += d; });
  h.stop = async () => {
    if (h.exitCode !== undefined || h.exitSignal !== undefined) return h.exited;
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 5000);
    const r = await h.exited;
    clearTimeout(t);
    return r;
  };
  h.ready = new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`example did not start within 20 s\n${h.log}`)); }, 20000);
    const check = () => {
      const m = h.log.match(/latchkey example backend listening on (http:\/\/[\d.]+:\d+)/);
      if (m) { clearTimeout(timer); h.origin = m[1]; resolvePromise(h); }
    };
    p.stdout.on('data', check);
    p.on('error', (e) => { clearTimeout(timer); reject(e); });
    h.exited.then(({ code, signal }) => { clearTimeout(timer); reject(new Error(`example exited (${code}, ${signal}) before listening\n${h.log}`)); });
  });
  return h;
}

/**
 * A reverse proxy in front of Latchkey that counts requests by path and can break the
 * resolver: mode 'ok' | 'reset' (close the connection) | 'status502' | 'hang'.
 */
async function startProxy() {
  const proxy = { target: null, counts: { jwks: 0, resolve: 0 }, lastJwksAt: 0, resolverMode: 'ok', hung: new Set() };
  const agent = new http.Agent({ keepAlive: false });
  const server = http.createServer((inReq, inRes) => {
    const p = new URL(inReq.url, 'http://x').pathname;
    if (p === '/oauth2/jwks') { proxy.counts.jwks += 1; proxy.lastJwksAt = Date.now(); }
    if (p === '/_resolver/resolve') {
      proxy.counts.resolve += 1;
      if (proxy.resolverMode === 'reset') { inReq.socket.destroy(); return; }
      if (proxy.resolverMode === 'status502') { inRes.writeHead(502, { 'content-type': 'text/plain' }); inRes.end('bad gateway'); return; }
      if (proxy.resolverMode === 'hang') { proxy.hung.add(inRes); return; }
    }
    const out = http.request({
      host: '127.0.0.1', port: proxy.target, method: inReq.method, path: inReq.url, headers: inReq.headers, agent,
    }, (upRes) => {
      inRes.writeHead(upRes.statusCode, upRes.rawHeaders);
      upRes.pipe(inRes);
    });
    out.on('error', () => { inRes.destroy(); });
    inReq.pipe(out);
  });
  // Longer than the example's pool idle timeout, so idle connections are closed by the client side.
  server.keepAliveTimeout = 60000;
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  proxy.origin = `http://127.0.0.1:${server.address().port}`;
  proxy.close = () => new Promise((r) => {
    for (const res of proxy.hung) res.destroy();
    server.closeAllConnections();
    server.close(() => r());
  });
  return proxy;
}

function tamperSignature(token) {
  const [h, p, s] = token.split('.');
  const i = Math.floor(s.length / 2);
  return `${h}.${p}.${s.slice(0, i)}${s[i] === 'A' ? 'B' : 'A'}${s.slice(i + 1)}`;
}

function tamperPayload(token, changes) {
  const [h, p, s] = token.split('.');
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
  return `${h}.${b64url(JSON.stringify({ ...payload, ...changes }))}.${s}`;
}

function assertInvalidToken(r, what) {
  assert.equal(r.status, 401, `${what}: status ${r.status} ${r.text}`);
  assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer\b.*error="invalid_token"/, `${what}: WWW-Authenticate`);
  assert.equal(r.json().error, 'invalid_token', what);
}

describe('examples/rust-backend', { timeout: BUILD_TIMEOUT_MS + 5 * 60 * 1000 }, () => {
  let proxy;
  let srv;
  let other;
  let example;
  let alice; // {tokens, ...} of a login through the proxy
  const api = (p, opts) => req(new URL(p, example.origin), opts);

  before(async () => {
    await buildExample();
    proxy = await startProxy();
    srv = await startServer({
      users: [{ username: 'alice', verified: true, roles: ['admin', 'staff'] }],
      // The issuer is the proxy's origin: every URL the example learns points through it.
      config: () => baseConfig(proxy.origin),
    });
    proxy.target = srv.port;
    other = await startServer(); // its own signing key: an unknown kid to the example
    example = await startExample(proxy.origin, ['--jwks-refetch-cooldown', String(COOLDOWN_S)]).ready;
    alice = await login(proxy.origin, { username: 'alice' });
  }, { timeout: BUILD_TIMEOUT_MS + 60000 });

  after(async () => {
    await example?.stop();
    try {
      const dir = path.join(HERE, 'artifacts');
      await mkdir(dir, { recursive: true });
      if (example) await writeFile(path.join(dir, '42-rust-backend-example.log'), example.logs());
    } catch { /* best effort */ }
    await proxy?.close();
    await srv?.cleanup();
    await other?.cleanup();
  });

  it('discovered the issuer and loaded the JWKS once at start-up', () => {
    assert.equal(proxy.counts.jwks, 1, 'one JWKS request at start-up');
    assert.match(example.logs(), /jwks loaded/);
    assert.doesNotMatch(example.logs(), /jwks refetched/);
  });

  it('GET /api/public → 200 without a token', async () => {
    const r = await api('/api/public');
    assert.equal(r.status, 200, r.text);
    assert.ok(r.json().message);
  });

  it('GET /api/me → 200 with the access token: sub, sid and roles from the JWT', async () => {
    const r = await api('/api/me', { bearer: alice.tokens.access_token });
    assert.equal(r.status, 200, r.text);
    const body = r.json();
    const claims = decodeJwt(alice.tokens.access_token).payload;
    assert.equal(body.sub, srv.userIds.alice);
    assert.equal(body.sid, claims.sid);
    assert.deepEqual([...body.roles].sort(), ['admin', 'staff']);
    assert.equal(body.checked_by, 'jwt');
    assert.ok(body.scope.includes('openid'));
  });

  it('GET /api/me → 401 without a token or with another scheme (RFC 6750: no error code)', async () => {
    for (const opts of [{}, { basic: ['alice', 'secret'] }]) {
      const r = await api('/api/me', opts);
      assert.equal(r.status, 401, JSON.stringify(opts));
      assert.equal(r.headers.get('www-authenticate'), 'Bearer', JSON.stringify(opts));
    }
    assertInvalidToken(await api('/api/me', { headers: { authorization: 'Bearer' } }), 'empty Bearer');
    assertInvalidToken(await api('/api/me', { headers: { authorization: 'Bearer a b' } }), 'two tokens');
  });

  it('GET /api/me → 401 invalid_token for garbage, tampered, unsigned and ID tokens, without refetching the JWKS', async () => {
    const before = proxy.counts.jwks;
    const at = alice.tokens.access_token;
    const { header } = decodeJwt(at);
    const bad = {
      garbage: 'not-a-jwt',
      'three garbage parts': 'a.b.c',
      'tampered signature': tamperSignature(at),
      'tampered payload (sub)': tamperPayload(at, { sub: 'someone-else' }),
      'tampered payload (exp)': tamperPayload(at, { exp: nowSec() + 86400 }),
      'alg none': signJwt({ ...header, alg: 'none' }, decodeJwt(at).payload),
      'ID token (typ JWT, aud = client)': alice.tokens.id_token,
      'refresh token': alice.tokens.refresh_token,
    };
    for (const [what, token] of Object.entries(bad)) assertInvalidToken(await api('/api/me', { bearer: token }), what);
    assert.equal(proxy.counts.jwks, before, 'tokens with a known kid (or none) never cause a JWKS request');
    assert.equal((await api('/api/me', { bearer: at })).status, 200, 'the real token still works');
  });

  it('GET /api/sensitive → 200 with the token, confirmed by the resolver on this request', async () => {
    const before = proxy.counts.resolve;
    const r = await api('/api/sensitive', { bearer: alice.tokens.access_token });
    assert.equal(r.status, 200, r.text);
    const body = r.json();
    assert.equal(body.sub, srv.userIds.alice);
    assert.equal(body.checked_by, 'resolver');
    assert.deepEqual([...body.roles].sort(), ['admin', 'staff'], 'roles from X-Authgear-User-Roles');
    assert.equal(proxy.counts.resolve, before + 1, 'exactly one resolver request');
  });

  it('GET /api/sensitive → 401 without a token or with a bad one, and the resolver is not bothered', async () => {
    const before = proxy.counts.resolve;
    const r = await api('/api/sensitive');
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer');
    assertInvalidToken(await api('/api/sensitive', { bearer: tamperSignature(alice.tokens.access_token) }), 'tampered');
    assertInvalidToken(await api('/api/sensitive', { bearer: 'garbage' }), 'garbage');
    assert.equal(proxy.counts.resolve, before, 'local verification refuses first');
  });

  it('after revoking the refresh token: /api/sensitive → 401 at once, /api/me → still 200 until exp', async () => {
    const bob = await login(proxy.origin, { username: 'alice' });
    const at = bob.tokens.access_token;
    assert.equal((await api('/api/sensitive', { bearer: at })).status, 200, 'before');
    assert.equal((await api('/api/me', { bearer: at })).status, 200, 'before');

    assert.equal((await revoke(srv.origin, bob.tokens.refresh_token)).status, 200);
    assert.equal((await resolve(srv.origin, { bearer: at })).ag['x-authgear-session-valid'], 'false', 'Latchkey: revoked');

    assertInvalidToken(await api('/api/sensitive', { bearer: at }), 'sensitive after revocation');
    const me = await api('/api/me', { bearer: at });
    assert.equal(me.status, 200, 'local verification cannot see the revocation');
    assert.equal(me.json().sub, srv.userIds.alice);
    assert.ok(me.json().expires_at > nowSec(), 'accepted because it has not expired');

    // the other session is unaffected
    assert.equal((await api('/api/sensitive', { bearer: alice.tokens.access_token })).status, 200);
  });

  it('resolver unreachable, failing or hanging → /api/sensitive 503 with Retry-After, never 200', async () => {
    const at = alice.tokens.access_token;
    try {
      for (const mode of ['reset', 'status502', 'hang']) {
        proxy.resolverMode = mode;
        const started = Date.now();
        const r = await api('/api/sensitive', { bearer: at, timeoutMs: 20000 });
        assert.equal(r.status, 503, `${mode}: ${r.status} ${r.text}`);
        assert.ok(r.headers.get('retry-after'), `${mode}: Retry-After`);
        assert.equal(r.json().error, 'temporarily_unavailable', mode);
        assert.ok(Date.now() - started < 10000, `${mode}: answered in ${Date.now() - started} ms`);
        assert.equal((await api('/api/me', { bearer: at })).status, 200, `${mode}: local verification still works`);
      }
    } finally {
      proxy.resolverMode = 'ok';
      for (const res of proxy.hung) res.destroy();
      proxy.hung.clear();
    }
    assert.equal((await api('/api/sensitive', { bearer: at })).status, 200, 'back to normal');
  });

  it('unknown kids are rejected, and a flood of them costs at most one JWKS request per cooldown', async () => {
    const foreign = (await login(other.origin, { username: 'alice' })).tokens.access_token;
    assert.notEqual(decodeJwt(foreign).header.kid, decodeJwt(alice.tokens.access_token).header.kid);
    const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const forged = () => signJwt(
      { alg: 'ES256', typ: 'at+jwt', kid: randomString(12) },
      { ...decodeJwt(alice.tokens.access_token).payload, jti: randomString() },
      privateKey,
    );
    const refetches = () => (example.logs().match(/jwks refetched/g) ?? []).length;
    const waitOutCooldown = async () => {
      const wait = proxy.lastJwksAt + COOLDOWN_S * 1000 + 300 - Date.now();
      if (wait > 0) await sleep(wait);
    };

    // At most one JWKS request per cooldown window since `start` (normally exactly one:
    // the floods take far less than a cooldown).
    const atMostOnePerCooldown = (start, before, what) => {
      const made = proxy.counts.jwks - before;
      const allowed = 1 + Math.floor((Date.now() - start) / (COOLDOWN_S * 1000));
      assert.ok(made >= 1, `${what}: the first unknown kid after the cooldown refetches`);
      assert.ok(made <= allowed, `${what}: ${made} JWKS requests in ${Date.now() - start} ms (cooldown ${COOLDOWN_S} s)`);
    };
    const flood = async (n) => {
      const rs = await Promise.all(Array.from({ length: n }, (_, i) => api(i % 2 ? '/api/me' : '/api/sensitive', { bearer: i % 10 ? forged() : foreign })));
      for (const r of rs) assertInvalidToken(r, 'flood');
    };

    // 1. After the cooldown, the first unknown kid makes exactly one refetch...
    await waitOutCooldown();
    const start = Date.now();
    const before = proxy.counts.jwks;
    assertInvalidToken(await api('/api/me', { bearer: foreign }), 'token of another Latchkey');
    assert.equal(proxy.counts.jwks, before + 1, 'one refetch for the first unknown kid');
    // ...and a flood right after makes none.
    await flood(100);
    atMostOnePerCooldown(start, before, 'first flood');
    assert.equal((await api('/api/me', { bearer: alice.tokens.access_token })).status, 200, 'known keys unaffected');

    // 2. After the next cooldown: again one refetch for a whole flood.
    await waitOutCooldown();
    const start2 = Date.now();
    const before2 = proxy.counts.jwks;
    await flood(100);
    atMostOnePerCooldown(start2, before2, 'second flood');
    await sleep(200); // let the example's stderr arrive
    assert.equal(refetches(), proxy.counts.jwks - 1, 'one "jwks refetched" log line per request after the start-up load');
  });

  it('refuses to start when --issuer is not exactly the discovered issuer', async () => {
    // Latchkey's own address answers, but its discovery document names the proxy origin.
    const h = startExample(srv.origin);
    const outcome = await h.ready.then(() => 'listening', () => 'failed');
    if (outcome === 'listening') await h.stop();
    const { code } = await h.exited;
    assert.equal(outcome, 'failed', `it must not listen:\n${h.logs()}`);
    assert.equal(code, 1, h.logs());
    assert.match(h.logs(), /names the issuer/);
  });

  it('stops on SIGTERM with exit code 0', async () => {
    const { code, signal } = await example.stop();
    assert.equal(signal, null);
    assert.equal(code, 0, example.logs());
  });
});
