// The audit stream on every target: sign-ins (good and bad), tokens issued, refresh-
// token reuse, revocations and admin actions are stored with the request id, client,
// user, address and user agent, and `latchkey audit tail` reads them back, also as
// they happen (--follow). Nothing secret is in it.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  startServer, login, authorize, refresh, revoke, tokenRequest, BACKEND_SECRET, sleep, LATCHKEY_BIN,
} from './harness.mjs';

const jsonLines = (stdout) => stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));

describe('audit stream', { timeout: 180000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({ users: [{ username: 'alice' }, { username: 'mallory' }] });
  });
  after(async () => { await srv?.cleanup(); });

  async function tail(args = []) {
    const r = await srv.admin(['audit', 'tail', '--since', '600', '--json', ...args]);
    assert.equal(r.code, 0, r.stderr);
    return jsonLines(r.stdout);
  }

  it('records sign-ins, tokens, refresh reuse, revocations and admin actions, with their context', async () => {
    const l = await login(srv.origin);
    await assert.rejects(login(srv.origin, { username: 'mallory', password: 'not-her-password' }), /did not redirect/);
    const typed = 'Hunter2-typed-in-the-wrong-field';
    await assert.rejects(login(srv.origin, { username: typed, password: 'whatever-123' }), /did not redirect/);
    const rotated = await refresh(srv.origin, l.tokens.refresh_token);
    assert.equal(rotated.status, 200);
    // The first token again, after its successor was used too: reuse.
    assert.equal((await refresh(srv.origin, rotated.json().refresh_token)).status, 200);
    const replay = await refresh(srv.origin, l.tokens.refresh_token);
    assert.equal(replay.status, 400);
    const other = await login(srv.origin);
    const rv = await revoke(srv.origin, other.tokens.refresh_token, { extra: { client_id: 'demo' } });
    assert.equal(rv.status, 200);
    const cc = await tokenRequest(srv.origin, { grant_type: 'client_credentials' }, { basic: ['backend', BACKEND_SECRET] });
    assert.equal(cc.status, 200, cc.text);
    assert.equal((await srv.admin(['users', 'disable', '--username', 'mallory', '--reason', 'audit test'])).code, 0);

    const events = await tail();
    const of = (name) => events.filter((e) => e.event === name);
    const alice = srv.userIds.alice;
    const ok = of('login.succeeded').find((e) => e.user_id === alice);
    assert.ok(ok, `a successful sign-in: ${JSON.stringify(events.map((e) => e.event))}`);
    assert.equal(ok.client_id, 'demo');
    assert.match(ok.request_id, /^[0-9a-f]{16}-[0-9a-f]+$/);
    assert.equal(typeof ok.ip, 'string');
    assert.ok(ok.ip.length > 0);
    assert.ok(typeof ok.user_agent === 'string' || ok.user_agent === null);
    const failed = of('login.failed');
    assert.ok(failed.some((e) => e.user_id === srv.userIds.mallory && /wrong password/.test(e.detail)), 'a known user');
    assert.ok(failed.some((e) => e.user_id === null && e.detail === 'unknown username'), 'an unknown name');
    const issued = of('token.issued');
    for (const grant of ['authorization_code', 'refresh_token', 'client_credentials']) {
      assert.ok(issued.some((e) => e.detail === grant), `token.issued for ${grant}`);
    }
    const byCode = issued.find((e) => e.detail === 'authorization_code' && e.user_id === alice);
    assert.ok(byCode);
    const reuse = of('refresh.reuse_detected');
    assert.equal(reuse.length >= 1, true, 'refresh-token reuse');
    assert.equal(reuse[0].user_id, alice);
    assert.ok(of('session.revoked').some((e) => e.detail === 'by its refresh token'));
    const disabled = of('admin.user_disabled').find((e) => e.user_id === srv.userIds.mallory);
    assert.equal(disabled?.detail, 'audit test');
    // In order, and each event once.
    const cursors = events.map((e) => e.cursor);
    assert.deepEqual([...cursors].sort(), cursors, 'oldest first');
    assert.equal(new Set(cursors).size, cursors.length);
    // Nothing secret: no token, no refresh token, nothing typed as a username.
    const text = JSON.stringify(events);
    for (const secret of [l.tokens.access_token, l.tokens.refresh_token, rotated.json().access_token, typed, BACKEND_SECRET]) {
      assert.ok(!text.includes(secret), 'no secret in the audit stream');
    }
  });

  it("carries the request's id, so an event leads to its access-log line", async () => {
    const a = await authorize(srv.origin);
    const r = await tokenRequest(srv.origin, {
      grant_type: 'authorization_code', code: a.code, redirect_uri: a.redirectUri, code_verifier: a.verifier, client_id: 'demo',
    }, { headers: { 'x-request-id': 'audit-e2e-42' } });
    assert.equal(r.status, 200);
    const events = await tail();
    const mine = events.filter((e) => e.request_id === 'audit-e2e-42');
    assert.deepEqual(mine.map((e) => e.event), ['token.issued']);
  });

  it('pages through --limit and follows new events with --follow', async () => {
    const some = await tail(['--limit', '3']);
    assert.equal(some.length, 3);
    const child = spawn(LATCHKEY_BIN, ['audit', 'tail', '--follow', '--json', '--since', '1', '--endpoint', srv.origin], {
      env: { ...process.env, LATCHKEY_ADMIN_KEY: srv.adminKey }, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    try {
      await sleep(1500);
      await login(srv.origin);
      const end = Date.now() + 20000;
      while (!jsonLines(out).some((e) => e.event === 'login.succeeded')) {
        if (Date.now() > end) throw new Error(`no event followed: ${out}`);
        await sleep(250);
      }
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('refuses an audit read without the admin key', async () => {
    const r = await fetch(`${srv.origin}/_api/admin/audit`);
    assert.equal(r.status, 401);
  });
});
