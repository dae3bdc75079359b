// Load-ish behaviour: many concurrent logins, resolves, refreshes and
// revocations at once. Every answer is a defined one (never 5xx), and the
// end state is consistent.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, login, refresh, revoke, resolve, req } from './harness.mjs';

describe('concurrency', { timeout: 120000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({ users: Array.from({ length: 5 }, (_, i) => ({ username: `u${i}` })) });
  });
  after(async () => { await srv?.cleanup(); });

  it('20 concurrent logins (4 per user) all succeed with distinct sessions', async () => {
    const ls = await Promise.all(Array.from({ length: 20 }, (_, i) => login(srv.origin, { username: `u${i % 5}` })));
    const sids = new Set(ls.map((l) => l.tokens.refresh_token.split('.')[0]));
    assert.equal(sids.size, 20, 'distinct token sessions');
    const cookies = new Set(ls.map((l) => l.browser.cookie('session').split('.')[0]));
    assert.equal(cookies.size, 20, 'distinct browser sessions');
    const rs = await Promise.all(ls.map((l) => resolve(srv.origin, { bearer: l.tokens.access_token })));
    rs.forEach((r, i) => {
      assert.equal(r.ag['x-authgear-session-valid'], 'true');
      assert.equal(r.ag['x-authgear-user-id'], srv.userIds[`u${i % 5}`], 'each token resolves to its own user');
    });
  });

  it('300 concurrent resolves mixed with revocations: no 5xx, revoked sessions end up invalid, others valid', async () => {
    const ls = await Promise.all(Array.from({ length: 6 }, (_, i) => login(srv.origin, { username: `u${i % 5}` })));
    const victims = ls.slice(0, 3);
    const keep = ls.slice(3);
    const jobs = [];
    for (let i = 0; i < 300; i++) {
      const l = ls[i % ls.length];
      jobs.push(i % 2 ? resolve(srv.origin, { bearer: l.tokens.access_token }) : resolve(srv.origin, { cookie: `session=${l.browser.cookie('session')}` }));
      if (i === 100) for (const v of victims) jobs.push(revoke(srv.origin, v.tokens.refresh_token));
      if (i % 25 === 0) jobs.push(refresh(srv.origin, keep[i % keep.length].tokens.refresh_token));
    }
    const results = await Promise.all(jobs);
    for (const r of results) assert.ok((r.status ?? r.res?.status) < 500, `no 5xx: ${r.status}`);
    for (const v of victims) {
      assert.equal((await resolve(srv.origin, { bearer: v.tokens.access_token })).ag['x-authgear-session-valid'], 'false');
    }
    for (const k of keep) {
      assert.equal((await resolve(srv.origin, { bearer: k.tokens.access_token })).ag['x-authgear-session-valid'], 'true');
      assert.equal((await resolve(srv.origin, { cookie: `session=${k.browser.cookie('session')}` })).ag['x-authgear-session-valid'], 'true');
    }
  });

  it('a refresh racing its own revocation: no 5xx, and the session ends revoked', async () => {
    for (let round = 0; round < 5; round++) {
      const l = await login(srv.origin, { username: 'u0' });
      const [a, b, c] = await Promise.all([
        refresh(srv.origin, l.tokens.refresh_token),
        revoke(srv.origin, l.tokens.refresh_token),
        refresh(srv.origin, l.tokens.refresh_token),
      ]);
      for (const r of [a, b, c]) assert.ok(r.status < 500, `no 5xx: ${r.status} ${r.text}`);
      assert.equal(b.status, 200);
      for (const r of [a, c]) {
        assert.ok(r.status === 200 || (r.status === 400 && r.json().error === 'invalid_grant'), `${r.status} ${r.text}`);
        if (r.status === 200) {
          assert.equal((await resolve(srv.origin, { bearer: r.json().access_token })).ag['x-authgear-session-valid'], 'false',
            'a token refreshed in the race dies with the revoked session');
          const again = await refresh(srv.origin, r.json().refresh_token);
          assert.equal(again.status, 400, 'its refresh token is dead');
        }
      }
      assert.equal((await resolve(srv.origin, { bearer: l.tokens.access_token })).ag['x-authgear-session-valid'], 'false');
    }
  });

  it('the server still answers normally afterwards', async () => {
    assert.equal((await req(`${srv.origin}/oauth2/jwks`)).status, 200);
  });
});
