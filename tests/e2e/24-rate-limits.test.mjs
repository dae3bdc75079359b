// Brute-force and abuse limits: token endpoint per address, per user and per client;
// failed sign-ins per address and per username+address; account lockout with backoff;
// X-Forwarded-For trusted only when configured.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, baseConfig, GENEROUS_RATE_LIMITS, Browser, authorize, authorizeUrl, login, refresh, tokenRequest,
  BACKEND_SECRET, DEFAULT_PASSWORD, DEMO_REDIRECT, pkce, sleep,
} from './harness.mjs';

const limits = (over) => ({ ...GENEROUS_RATE_LIMITS, ...over });

function expect429Json(r, what) {
  assert.equal(r.status, 429, `${what}: ${r.status} ${r.text}`);
  assert.equal(r.json().error, 'x_rate_limited', what);
  const retry = Number(r.headers.get('retry-after'));
  assert.ok(retry >= 1 && retry <= 60, `${what}: Retry-After ${r.headers.get('retry-after')}`);
  assert.equal(r.headers.get('cache-control'), 'no-store', what);
}

function cc(origin, headers = {}) {
  return tokenRequest(origin, { grant_type: 'client_credentials' }, { basic: ['backend', BACKEND_SECRET], headers });
}

/** Open the login page and post a password; returns the response to the POST. */
async function attempt(origin, username, password) {
  const b = new Browser(origin);
  const { challenge } = pkce();
  const page = await b.go(authorizeUrl(origin, {
    response_type: 'code', client_id: 'demo', redirect_uri: DEMO_REDIRECT, scope: 'openid',
    state: 's', code_challenge: challenge, code_challenge_method: 'S256',
  }));
  assert.equal(page.status, 200, `login page: ${page.status}`);
  return b.submit(page, { username, password });
}

describe('token endpoint limits', { timeout: 60000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({
      config: (o) => baseConfig(o, { rate_limits: limits({ token_per_ip: { limit: 6, window_seconds: 60 } }) }),
    });
  });
  after(async () => { await srv?.stop(); });

  it('per address: the request over the limit gets 429 x_rate_limited with Retry-After', async () => {
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await cc(srv.origin)).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200], 'within the limit');
    expect429Json(await cc(srv.origin), '7th request');
    expect429Json(await tokenRequest(srv.origin, { grant_type: 'nope' }), 'any token request from the address');
  });

  it('X-Forwarded-For is not trusted by default: a forged header does not reset the limit', async () => {
    expect429Json(await cc(srv.origin, { 'x-forwarded-for': '203.0.113.9' }), 'forged X-Forwarded-For');
  });
});

describe('token endpoint limits behind a trusted proxy', { timeout: 60000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({
      config: (o) => baseConfig(o, {
        http: { trust_proxy: true },
        rate_limits: limits({ token_per_ip: { limit: 2, window_seconds: 60 } }),
      }),
    });
  });
  after(async () => { await srv?.stop(); });

  it('with http.trust_proxy the last X-Forwarded-For entry is the client address', async () => {
    const a = { 'x-forwarded-for': '198.51.100.1, 203.0.113.1' };
    const b = { 'x-forwarded-for': '198.51.100.1, 203.0.113.2' };
    assert.equal((await cc(srv.origin, a)).status, 200);
    assert.equal((await cc(srv.origin, a)).status, 200);
    expect429Json(await cc(srv.origin, a), 'third from 203.0.113.1');
    assert.equal((await cc(srv.origin, b)).status, 200, 'another client address has its own bucket');
  });
});

describe('per-user and per-client token limits', { timeout: 60000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({
      config: (o) => baseConfig(o, {
        rate_limits: limits({
          token_per_user: { limit: 3, window_seconds: 60 },
          client_credentials_per_client: { limit: 2, window_seconds: 60 },
        }),
      }),
    });
  });
  after(async () => { await srv?.stop(); });

  it('per user: code and refresh grants of one user share a bucket', async () => {
    const { tokens } = await login(srv.origin); // 1
    const r1 = await refresh(srv.origin, tokens.refresh_token); // 2
    assert.equal(r1.status, 200, r1.text);
    const r2 = await refresh(srv.origin, r1.json().refresh_token); // 3
    assert.equal(r2.status, 200, r2.text);
    expect429Json(await refresh(srv.origin, r2.json().refresh_token), '4th grant for the user');
  });

  it('per client: client_credentials', async () => {
    assert.equal((await cc(srv.origin)).status, 200);
    assert.equal((await cc(srv.origin)).status, 200);
    expect429Json(await cc(srv.origin), '3rd client_credentials grant');
  });
});

describe('failed sign-ins', { timeout: 60000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({
      users: [{ username: 'alice' }, { username: 'bob' }],
      config: (o) => baseConfig(o, {
        rate_limits: limits({ login_failures_per_user_ip: { limit: 3, window_seconds: 60 } }),
        lockout: { enabled: false },
      }),
    });
  });
  after(async () => { await srv?.stop(); });

  it('per username and address: after 3 failures even the right password gets 429, as an HTML page', async () => {
    for (let i = 0; i < 3; i++) {
      const r = await attempt(srv.origin, 'alice', 'wrong password');
      assert.equal(r.status, 200, `failure ${i + 1} shows the form again`);
      assert.match(r.text, /Incorrect username or password/);
    }
    const r = await attempt(srv.origin, 'alice', DEFAULT_PASSWORD);
    assert.equal(r.status, 429, r.text.slice(0, 200));
    assert.match(r.headers.get('content-type') ?? '', /text\/html/);
    assert.ok(Number(r.headers.get('retry-after')) >= 1);
    assert.equal(r.setCookies.filter((c) => c.startsWith('session=')).length, 0, 'no session cookie');
  });

  it('another user from the same address is not affected, and success does not count', async () => {
    const a = await authorize(srv.origin, { username: 'bob' });
    assert.ok(a.code);
  });
});

describe('account lockout with backoff', { timeout: 60000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({
      users: [{ username: 'carol' }],
      config: (o) => baseConfig(o, {
        lockout: {
          enabled: true, max_attempts: 3, history_duration_seconds: 60,
          minimum_duration_seconds: 2, maximum_duration_seconds: 8, backoff_factor: 2,
        },
      }),
    });
  });
  after(async () => { await srv?.stop(); });

  it('locks after max_attempts, refuses the right password while locked, unlocks after the backoff', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await attempt(srv.origin, 'carol', 'nope')).status, 200);
    const locked = await attempt(srv.origin, 'carol', DEFAULT_PASSWORD);
    assert.equal(locked.status, 429, 'locked');
    assert.ok(Number(locked.headers.get('retry-after')) <= 2);
    await sleep(2300);
    // One more failure after the lock: the next lock is twice as long.
    assert.equal((await attempt(srv.origin, 'carol', 'nope')).status, 200, 'the lock expired');
    const again = await attempt(srv.origin, 'carol', DEFAULT_PASSWORD);
    assert.equal(again.status, 429);
    const retry = Number(again.headers.get('retry-after'));
    assert.ok(retry >= 3 && retry <= 4, `backoff doubled: Retry-After ${retry}`);
    await sleep(retry * 1000 + 300);
    const ok = await attempt(srv.origin, 'carol', DEFAULT_PASSWORD);
    assert.equal(ok.status, 302, `signs in after the lock: ${ok.status}`);
    // Success cleared the failures: a single failure does not lock.
    assert.equal((await attempt(srv.origin, 'carol', 'nope')).status, 200);
    assert.equal((await attempt(srv.origin, 'carol', DEFAULT_PASSWORD)).status, 302);
  });

  it('an unknown username locks exactly like a real one (no account enumeration)', async () => {
    const real = [];
    const ghost = [];
    for (let i = 0; i < 4; i++) {
      real.push((await attempt(srv.origin, 'carol', 'nope')).status);
      ghost.push((await attempt(srv.origin, 'nobody-at-all', 'nope')).status);
    }
    assert.deepEqual(real, [200, 200, 200, 429]);
    assert.deepEqual(ghost, real);
  });
});
