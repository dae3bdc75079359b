// The SQLite store made unreachable while the server runs, as root (so no chmod tricks:
// root ignores file modes). Two real failures, both from a second process holding
// SQLite's own locks with python3:
//
// - the WRITE lock (`BEGIN EXCLUSIVE`). In WAL mode this blocks writers only: readers
//   go on. So the resolver, userinfo and healthz keep answering from the store, while
//   every write (code redemption, revocation, logout) waits for the busy timeout (5 s)
//   and answers 503 with Retry-After. 15-store-unavailable covers refresh and login.
// - the READ path: every lock byte of the WAL index (the -shm file: write, checkpoint,
//   recover and the five reader marks, bytes 120..127), taken with fcntl exactly as
//   SQLite takes them. A reader then finds no read mark it can lock; SQLite retries for
//   about 10 s and fails with SQLITE_PROTOCOL ("locking protocol"). This is the only way
//   found to make reads fail as root without touching the server's files: an exclusive
//   lock on the database file itself is never granted while the server's connections
//   hold their shared locks, and replacing or unlinking the file does not affect the
//   descriptors the server already has open.
//
// In both cases: 503 + Retry-After (JSON temporarily_unavailable on API endpoints, an
// HTML page on the login page), the resolver never answers valid, nothing is half done,
// and the same server process recovers by itself once the lock is released.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import {
  startServer, login, authorize, redeemCode, refresh, revoke, resolve, req, raw, authgearHeaders, Browser, authorizeUrl,
  parseForm, pkce, randomString, sleep, PYTHON_BIN, DEMO_REDIRECT, DEMO_POST_LOGOUT, DEFAULT_PASSWORD,
} from './harness.mjs';

const HOLDER = `
import fcntl, os, sqlite3, sys
db, mode = sys.argv[1], sys.argv[2]
if mode == "read":
    # The WAL-index lock bytes (SQLite's WALINDEX_LOCK_OFFSET 120, SQLITE_SHM_NLOCK 8).
    fd = os.open(db + "-shm", os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX, 8, 120, os.SEEK_SET)
else:
    c = sqlite3.connect(db, isolation_level=None, timeout=10)
    c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
`;

const SLOW = { timeoutMs: 40000 }; // a blocked read takes SQLite about 10 s to give up

/** Holds SQLite's write lock ('write') or every WAL-index lock ('read') until release(). */
function hold(dbPath, mode) {
  return new Promise((resolvePromise, reject) => {
    const p = spawn(PYTHON_BIN, ['-c', HOLDER, dbPath, mode], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const exited = new Promise((r) => p.on('close', r));
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`could not take the ${mode} lock within 15 s: ${err}`)); }, 15000);
    p.on('error', (e) => { clearTimeout(t); reject(new Error(`${PYTHON_BIN}: ${e.message} (python3 is needed)`)); });
    p.stderr.on('data', (d) => { err += d; });
    p.stdout.on('data', (d) => {
      out += d;
      if (out.includes('locked')) {
        clearTimeout(t);
        resolvePromise({
          async release() { p.stdin.end(); const k = setTimeout(() => p.kill('SIGKILL'), 5000); await exited; clearTimeout(k); },
          kill() { try { p.kill('SIGKILL'); } catch { /* gone */ } },
        });
      }
    });
    p.on('close', (code) => { clearTimeout(t); reject(new Error(`the ${mode} lock holder exited ${code} before locking: ${err}`)); });
    p.stdin.on('error', () => {});
  });
}

function assertJson503(r, what) {
  assert.equal(r.status, 503, `${what}: ${r.status} ${r.text?.slice(0, 200)}`);
  assert.ok(r.headers.get('retry-after'), `${what}: Retry-After`);
  assert.match(r.headers.get('content-type') ?? '', /application\/json/, `${what}: JSON`);
  assert.equal(r.json().error, 'temporarily_unavailable', what);
}

function assertHtml503(r, what) {
  assert.equal(r.status, 503, `${what}: ${r.status} location=${r.location}`);
  assert.ok(r.headers.get('retry-after'), `${what}: Retry-After`);
  assert.match(r.headers.get('content-type') ?? '', /text\/html/, `${what}: an HTML page`);
  assert.equal(r.location, null, `${what}: no redirect`);
  assert.ok(!r.setCookies.some((c) => /^session=[^;]/.test(c)), `${what}: no session cookie`);
}

/**
 * One request on a fresh connection (Connection: close), with a long timeout. A blocked
 * store call blocks the worker thread that runs it, and with it every keep-alive
 * connection that worker accepted; a fresh connection is accepted by a free worker, so
 * two such requests really run side by side. Answers like req().
 */
async function fresh(origin, pathname, { method, headers = {}, form, bearer, cookie } = {}) {
  const h = { ...headers };
  if (bearer) h.authorization = `Bearer ${bearer}`;
  if (cookie) h.cookie = cookie;
  let body;
  if (form) { body = new URLSearchParams(form).toString(); h['content-type'] = 'application/x-www-form-urlencoded'; }
  const r = await raw(origin, { method: method ?? (form ? 'POST' : 'GET'), path: pathname, headers: h, body, ...SLOW });
  const hs = new Headers();
  for (const [k, v] of Object.entries(r.headers)) for (const x of [].concat(v)) hs.append(k, x);
  return {
    status: r.status, headers: hs, text: r.text, location: hs.get('location'), setCookies: [].concat(r.headers['set-cookie'] ?? []),
    json() { return JSON.parse(r.text); },
  };
}

/**
 * Runs two blocked requests side by side: the second starts a second later, once the
 * first is being served (a worker that accepts two connections in one go serves them one
 * after the other; on a busy machine that still happens, and only costs time).
 */
async function pair(first, second) {
  const a = first();
  await sleep(1000);
  const b = second();
  return [await a, await b];
}

/** The resolver on a fresh connection: {ag, res}. */
async function resolveFresh(origin, { bearer, cookie, query = '' }) {
  const res = await fresh(origin, `/_resolver/resolve${query}`, { bearer, cookie });
  return { ag: authgearHeaders(res), res };
}

/** The resolver's answer must never be "valid" without the store. */
function assertResolver503(r, what) {
  assert.notEqual(r.ag['x-authgear-session-valid'], 'true', `${what}: never valid without the store`);
  assert.equal(r.ag['x-authgear-user-id'], undefined, `${what}: no identity`);
  assertJson503(r.res, what);
}

describe('store failure', { timeout: 180000 }, () => {
  let srv;
  let db;
  const holders = [];
  before(async () => {
    srv = await startServer();
    db = path.join(srv.dataDir, 'latchkey.sqlite3');
  });
  after(async () => {
    for (const h of holders) h.kill();
    await srv?.cleanup();
  });

  async function holding(mode, fn) {
    const h = await hold(db, mode);
    holders.push(h);
    try {
      return await fn();
    } finally {
      await h.release();
    }
  }

  it('write lock held (BEGIN EXCLUSIVE): reads go on — resolver, userinfo and healthz answer from the store', async () => {
    const l = await login(srv.origin);
    const cookie = `session=${l.browser.cookie('session')}`;
    const revoked = await login(srv.origin);
    assert.equal((await revoke(srv.origin, revoked.tokens.refresh_token)).status, 200);
    await holding('write', async () => {
      const t0 = Date.now();
      assert.equal((await resolve(srv.origin, { bearer: l.tokens.access_token })).ag['x-authgear-session-valid'], 'true', 'bearer');
      assert.equal((await resolve(srv.origin, { cookie })).ag['x-authgear-session-valid'], 'true', 'cookie');
      assert.equal((await resolve(srv.origin, { bearer: revoked.tokens.access_token })).ag['x-authgear-session-valid'], 'false',
        'a revoked session is still seen as revoked');
      const ui = await req(srv.url('/oauth2/userinfo'), { bearer: l.tokens.access_token });
      assert.equal(ui.status, 200, `userinfo ${ui.status}`);
      assert.equal((await req(srv.url('/healthz'))).status, 200, 'healthz');
      assert.ok(Date.now() - t0 < 4000, `reads did not wait for the write lock (${Date.now() - t0} ms)`);
    });
  });

  it('write lock held: code redemption, revocation and logout answer 503 + Retry-After, consume nothing, and work once it is released', async () => {
    const a = await authorize(srv.origin);
    const l = await login(srv.origin);
    const victim = await login(srv.origin);
    const hint = victim.tokens.id_token;
    const logoutUrl = `${srv.url('/oauth2/end_session')}?${new URLSearchParams({ id_token_hint: hint, post_logout_redirect_uri: DEMO_POST_LOGOUT })}`;
    await holding('write', async () => {
      assertJson503(await fresh(srv.origin, '/oauth2/token', {
        form: { grant_type: 'authorization_code', code: a.code, redirect_uri: a.redirectUri, code_verifier: a.verifier, client_id: 'demo' },
      }), 'code redemption');
      assertJson503(await fresh(srv.origin, '/oauth2/revoke', { form: { token: l.tokens.refresh_token } }), 'revoke');
      assertHtml503(await fresh(srv.origin, new URL(logoutUrl).pathname + new URL(logoutUrl).search), 'end_session with a hint');
    });
    // nothing was consumed or half done, and the same process serves again
    const t = await redeemCode(srv.origin, a);
    assert.equal(t.status, 200, `the code was not consumed: ${t.status} ${t.text}`);
    assert.equal((await resolve(srv.origin, { bearer: t.json().access_token })).ag['x-authgear-session-valid'], 'true');
    assert.equal((await resolve(srv.origin, { bearer: l.tokens.access_token })).ag['x-authgear-session-valid'], 'true', 'the failed revocation revoked nothing');
    assert.equal((await revoke(srv.origin, l.tokens.refresh_token)).status, 200, 'revocation works again');
    assert.equal((await resolve(srv.origin, { bearer: l.tokens.access_token })).ag['x-authgear-session-valid'], 'false');
    assert.equal((await resolve(srv.origin, { bearer: victim.tokens.access_token })).ag['x-authgear-session-valid'], 'true', 'the failed logout revoked nothing');
    const out = await req(logoutUrl);
    assert.equal(out.status, 302, `logout works again: ${out.status}`);
    assert.equal((await resolve(srv.origin, { bearer: victim.tokens.access_token })).ag['x-authgear-session-valid'], 'false');
  });

  it('read path blocked (WAL-index locks held): 503 + Retry-After everywhere, the resolver never answers valid, and the same process recovers by itself', async () => {
    const l = await login(srv.origin);
    const cookie = `session=${l.browser.cookie('session')}`;
    // resolved once, so the token's signature is in the verified-token cache: the
    // session check must still go to the store
    assert.equal((await resolve(srv.origin, { bearer: l.tokens.access_token })).ag['x-authgear-session-valid'], 'true');
    const pid = srv.handle.proc.pid;
    const b = new Browser(srv.origin);
    const { challenge } = pkce();
    const loginPage = await b.go(authorizeUrl(srv.origin, {
      response_type: 'code', client_id: 'demo', redirect_uri: DEMO_REDIRECT, scope: 'openid', state: randomString(),
      code_challenge: challenge, code_challenge_method: 'S256',
    }));
    assert.equal(loginPage.status, 200);
    const withCookie = authorizeUrl(srv.origin, {
      response_type: 'code', client_id: 'demo', redirect_uri: DEMO_REDIRECT, scope: 'openid', state: randomString(),
      code_challenge: challenge, code_challenge_method: 'S256',
    });

    await holding('read', async () => {
      // Two at a time, each on its own connection: each blocked read holds one of the
      // server's two worker threads for about 10 s.
      const [bearer, viaCookie] = await pair(
        () => resolveFresh(srv.origin, { bearer: l.tokens.access_token }),
        () => resolveFresh(srv.origin, { cookie }),
      );
      assertResolver503(bearer, 'resolver, bearer (signature cached)');
      assertResolver503(viaCookie, 'resolver, cookie');
      const [r, posted] = await pair(
        () => fresh(srv.origin, '/oauth2/token', { form: { grant_type: 'refresh_token', refresh_token: l.tokens.refresh_token, client_id: 'demo' } }),
        () => fresh(srv.origin, '/oauth2/authorize', {
          form: { ...parseForm(loginPage.text).fields, username: 'alice', password: DEFAULT_PASSWORD },
          cookie: `csrf=${b.cookie('csrf')}`,
        }),
      );
      assertJson503(r, 'refresh');
      assertHtml503(posted, 'login form POST');
      const [healthz, sso] = await pair(
        () => fresh(srv.origin, '/healthz'),
        () => fresh(srv.origin, new URL(withCookie).pathname + new URL(withCookie).search, { cookie }),
      );
      assertJson503(healthz, 'healthz');
      assertHtml503(sso, 'authorize with a session cookie');
      const [strict, ui] = await pair(
        () => resolveFresh(srv.origin, { bearer: l.tokens.access_token, query: '?strict=true' }),
        () => fresh(srv.origin, '/oauth2/userinfo', { bearer: l.tokens.access_token }),
      );
      assertResolver503(strict, 'strict resolver (neither 200 nor 401)');
      assertJson503(ui, 'userinfo');
    });

    // recovery without a restart: same process, and everything works at once
    assert.equal(srv.handle.proc.pid, pid, 'the same server process');
    assert.equal(srv.handle.exitCode, undefined, 'still running');
    assert.equal((await req(srv.url('/healthz'))).status, 200, 'healthz recovers');
    assert.equal((await resolve(srv.origin, { bearer: l.tokens.access_token })).ag['x-authgear-session-valid'], 'true', 'resolver recovers');
    assert.equal((await resolve(srv.origin, { cookie })).ag['x-authgear-session-valid'], 'true', 'cookie recovers');
    const r = await refresh(srv.origin, l.tokens.refresh_token);
    assert.equal(r.status, 200, `the refresh token was not consumed: ${r.text}`);
    const again = await login(srv.origin);
    assert.equal((await resolve(srv.origin, { bearer: again.tokens.access_token })).ag['x-authgear-session-valid'], 'true', 'login recovers');
  });
});
