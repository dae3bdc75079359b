// The admin API and the operator CLI over it: every operation through the real
// `latchkey` binary against the running server's admin API (`--endpoint`), on every
// target, and what each does to logins, sessions and tokens seen from outside.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { appendFile } from 'node:fs/promises';
import path from 'node:path';
import * as jose from 'jose';
import {
  startServer, login, refresh, resolve, req, sessionValid, runPython, TARGET,
} from './harness.mjs';

const VENV_PYTHON = `${process.env.LATCHKEY_VENV || `${process.env.HOME || '/root'}/.cache/latchkey-venv`}/bin/python`;

/** Runs an operator command; fails the test with its output unless it exits 0. */
async function ok(srv, args, opts) {
  const r = await srv.admin(args, opts);
  assert.equal(r.code, 0, `latchkey ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

const jsonLines = (stdout) => stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));

/** A raw admin API request; `key: null` sends none. */
async function api(srv, method, path, { key = srv.adminKey, json, body, headers = {} } = {}) {
  const h = { ...headers };
  if (key) h.authorization = `Bearer ${key}`;
  return req(`${srv.origin}/_api/admin/${path}`, { method, headers: h, json, body });
}

describe('admin API and operator CLI', { timeout: 300000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({ users: [{ username: 'alice' }, { username: 'bob', verified: true, roles: ['ops'] }] });
  });
  after(async () => { await srv?.cleanup(); });

  it('refuses requests without the admin key, with a wrong one, or a client token', async () => {
    for (const key of [null, 'wrong-key', `${srv.adminKey}x`]) {
      const r = await api(srv, 'GET', 'users', { key });
      assert.equal(r.status, 401, `key ${key}: ${r.status} ${r.text}`);
      assert.equal(r.json().error, 'invalid_token');
      assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
    }
    const l = await login(srv.origin);
    const r = await api(srv, 'GET', 'users', { key: l.tokens.access_token });
    assert.equal(r.status, 401, 'an access token is not an admin key');
    const cli = await srv.admin(['users', 'list'], { env: { LATCHKEY_ADMIN_KEY: 'wrong-key' } });
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /not an admin key \(401\)/);
  });

  it('answers bad requests with a 4xx and an RFC 6749-style error', async () => {
    const cases = [
      ['POST', 'users', { body: '{"username":', headers: { 'content-type': 'application/json' } }, 400],
      ['POST', 'users', { body: 'username=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 400],
      ['POST', 'users', { json: { username: 'x', password: 'short' } }, 400],
      ['POST', 'users', { json: { username: 'x', password: 'long-enough-1', password_hash: '$2b$10$x' } }, 400],
      ['POST', 'users', { json: { username: 'x', password_hash: 'md5:5f4dcc3b5aa765d61d8327deb882cf99' } }, 400],
      ['POST', 'users', { json: { username: 'x', password: 'long-enough-1', admin: true } }, 400],
      ['GET', 'users?limit=0', {}, 400],
      ['GET', 'users?limit=1001', {}, 400],
      ['GET', 'users/no-such-id', {}, 404],
      ['DELETE', 'users/no-such-id', {}, 404],
      ['POST', 'users/no-such-id/disable', {}, 404],
      ['GET', 'users/no-such-id/sessions', {}, 404],
      ['POST', 'sessions/no-such-session/revoke', {}, 404],
      ['PUT', 'users', {}, 405],
      ['GET', 'sessions/x/revoke', {}, 405],
      ['GET', 'nothing/here', {}, 404],
    ];
    for (const [method, path, opts, status] of cases) {
      const r = await api(srv, method, path, opts);
      assert.equal(r.status, status, `${method} ${path}: ${r.status} ${r.text}`);
      const body = r.json();
      assert.equal(typeof body.error, 'string', `${method} ${path}: an error code`);
      assert.ok(!r.text.includes('5f4dcc3b5aa765d61d8327deb882cf99'), 'no hash is echoed');
    }
    const dup = await api(srv, 'POST', 'users', { json: { username: 'alice', password: 'long-enough-1' } });
    assert.equal(dup.status, 409, 'a taken username');
  });

  it('adds, shows, lists and searches users, a page at a time', async () => {
    const names = ['list-amy', 'list-ann', 'list-bea', 'list-cat', 'list-åsa'];
    const ids = {};
    for (const n of names) {
      ids[n] = (await ok(srv, ['users', 'add', '--username', n, '--role', 'r1', '--role', 'r2'], { stdin: 'pw-list-123456\n' })).stdout.trim();
    }
    const got = jsonLines((await ok(srv, ['users', 'get', '--username', 'list-ann', '--json'])).stdout)[0];
    assert.equal(got.id, ids['list-ann']);
    assert.deepEqual(got.roles, ['r1', 'r2']);
    assert.equal(got.password_scheme, 'argon2id');
    assert.equal(got.password_hash, undefined, 'never the hash');
    // Two per request: the CLI follows the cursor to the end.
    const all = jsonLines((await ok(srv, ['users', 'list', '--prefix', 'list-', '--page-size', '2', '--json'])).stdout);
    assert.deepEqual(all.map((u) => u.username), ['list-amy', 'list-ann', 'list-bea', 'list-cat', 'list-åsa'], 'byte order');
    const some = jsonLines((await ok(srv, ['users', 'list', '--prefix', 'list-a', '--json'])).stdout);
    assert.deepEqual(some.map((u) => u.username), ['list-amy', 'list-ann'], 'a prefix search');
    const limited = jsonLines((await ok(srv, ['users', 'list', '--prefix', 'list-', '--limit', '3', '--page-size', '2', '--json'])).stdout);
    assert.equal(limited.length, 3, '--limit caps the listing');
    // The API's own pagination.
    const page1 = (await api(srv, 'GET', 'users?prefix=list-&limit=3')).json();
    assert.equal(page1.users.length, 3);
    assert.equal(page1.next_after, 'list-bea');
    const page2 = (await api(srv, 'GET', `users?prefix=list-&limit=3&after=${encodeURIComponent(page1.next_after)}`)).json();
    assert.deepEqual(page2.users.map((u) => u.username), ['list-cat', 'list-åsa']);
    assert.equal(page2.next_after, null, 'the last page says so');
    const table = (await ok(srv, ['users', 'list', '--prefix', 'list-'])).stdout;
    assert.match(table.split('\n')[0], /^USERNAME\s+ID\s+DISABLED\s+VERIFIED\s+ROLES\s+CREATED$/);
    assert.match(table, /list-bea\s+[0-9a-f-]{36}\s+false\s+false\s+r1,r2\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/);
  });

  it("lists a user's sessions with client, times, user agent and address; revokes one", async () => {
    const l = await login(srv.origin, { username: 'bob' });
    const sessions = jsonLines((await ok(srv, ['sessions', 'list', '--username', 'bob', '--json'])).stdout);
    const browser = sessions.find((s) => s.kind === 'browser');
    const token = sessions.find((s) => s.kind === 'token');
    assert.ok(browser && token, `a browser and a token session: ${JSON.stringify(sessions)}`);
    assert.equal(token.client_id, 'demo');
    assert.equal(token.parent_id, browser.id, 'the token session was made from the login');
    for (const s of sessions) {
      for (const k of ['created_at', 'last_used_at', 'expires_at', 'authenticated_at']) assert.equal(typeof s[k], 'number', k);
      assert.ok(s.expires_at > s.created_at);
      assert.ok(s.user_agent === null || typeof s.user_agent === 'string');
    }
    assert.deepEqual(browser.amr, ['pwd']);
    assert.equal(await sessionValid(srv.origin, { bearer: l.tokens.access_token }), 'true');
    await ok(srv, ['sessions', 'revoke', '--id', token.id]);
    assert.equal(await sessionValid(srv.origin, { bearer: l.tokens.access_token }), 'false', 'its access token is dead');
    assert.equal((await refresh(srv.origin, l.tokens.refresh_token)).status, 400, 'so is its refresh token');
    const left = jsonLines((await ok(srv, ['sessions', 'list', '--username', 'bob', '--json'])).stdout);
    assert.deepEqual(left.map((s) => s.id), [browser.id], 'only the login is left');
  });

  it('revokes every session of a user at once', async () => {
    const a = await login(srv.origin, { username: 'alice' });
    const b = await login(srv.origin, { username: 'alice' });
    const r = jsonLines((await ok(srv, ['sessions', 'revoke-all', '--username', 'alice', '--json'])).stdout)[0];
    assert.ok(r.revoked >= 4, `two logins and their token sessions: ${r.revoked}`);
    for (const l of [a, b]) {
      assert.equal(await sessionValid(srv.origin, { bearer: l.tokens.access_token }), 'false');
      assert.equal((await refresh(srv.origin, l.tokens.refresh_token)).status, 400);
    }
    assert.equal((await ok(srv, ['sessions', 'list', '--username', 'alice', '--json'])).stdout.trim(), '');
  });

  it('disables (revoking everything), enables and deletes a user', async () => {
    await ok(srv, ['users', 'add', '--username', 'carl'], { stdin: 'pw-carl-123456\n' });
    const l = await login(srv.origin, { username: 'carl', password: 'pw-carl-123456' });
    const cookie = `session=${l.browser.cookie('session')}`;
    await ok(srv, ['users', 'disable', '--username', 'carl', '--reason', 'left the company']);
    const shown = jsonLines((await ok(srv, ['users', 'get', '--username', 'carl', '--json'])).stdout)[0];
    assert.equal(shown.disabled, true);
    assert.equal(shown.disabled_reason, 'left the company');
    assert.equal(await sessionValid(srv.origin, { cookie }), 'false', 'the login is revoked');
    assert.equal(await sessionValid(srv.origin, { bearer: l.tokens.access_token }), 'false');
    await ok(srv, ['users', 'enable', '--username', 'carl']);
    assert.equal(await sessionValid(srv.origin, { cookie }), 'false', 'enabling revives no session');
    const again = await login(srv.origin, { username: 'carl', password: 'pw-carl-123456' });
    assert.equal(await sessionValid(srv.origin, { bearer: again.tokens.access_token }), 'true', 'but they can log in');
    await ok(srv, ['users', 'delete', '--username', 'carl']);
    assert.equal(await sessionValid(srv.origin, { bearer: again.tokens.access_token }), 'false', 'deleting revokes');
    assert.equal((await refresh(srv.origin, again.tokens.refresh_token)).status, 400);
    const gone = await srv.admin(['users', 'get', '--username', 'carl']);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /no such user \(404\)/);
    const listed = jsonLines((await ok(srv, ['users', 'list', '--prefix', 'carl', '--json'])).stdout);
    assert.deepEqual(listed, [], 'nor is it listed');
    const reborn = (await ok(srv, ['users', 'add', '--username', 'carl'], { stdin: 'pw-carl-654321\n' })).stdout.trim();
    assert.notEqual(reborn, shown.id, 'the name is free again, under a new id');
  });

  it('creates a session for a user and returns working tokens (createSession)', async () => {
    const out = jsonLines((await ok(srv, ['sessions', 'create', '--username', 'bob', '--client-id', 'demo'])).stdout)[0];
    assert.equal(out.token_type, 'Bearer');
    assert.ok(out.access_token && out.refresh_token && out.id_token && out.session_id);
    const r = await resolve(srv.origin, { bearer: out.access_token });
    assert.equal(r.ag['x-authgear-session-valid'], 'true');
    assert.equal(r.ag['x-authgear-user-id'], srv.userIds.bob);
    const next = await refresh(srv.origin, out.refresh_token);
    assert.equal(next.status, 200, `the refresh token works: ${next.text}`);
    const listed = jsonLines((await ok(srv, ['sessions', 'list', '--username', 'bob', '--json'])).stdout);
    const made = listed.find((s) => s.id === out.session_id);
    assert.deepEqual(made?.amr, [], 'no authentication method: Latchkey did not authenticate them');
    const noRefresh = jsonLines((await ok(srv, ['sessions', 'create', '--username', 'bob', '--client-id', 'demo', '--scope', 'openid'])).stdout)[0];
    assert.equal(noRefresh.refresh_token, undefined, 'without offline_access, no refresh token');
    for (const [args, pattern] of [
      [['--client-id', 'nobody'], /no client/],
      [['--client-id', 'demo', '--scope', 'openid admin'], /unsupported scope/],
    ]) {
      const bad = await srv.admin(['sessions', 'create', '--username', 'bob', ...args]);
      assert.equal(bad.code, 1);
      assert.match(bad.stderr, pattern);
    }
    await ok(srv, ['users', 'disable', '--username', 'bob']);
    const refused = await srv.admin(['sessions', 'create', '--username', 'bob', '--client-id', 'demo']);
    assert.equal(refused.code, 1, 'not for a disabled user');
    assert.match(refused.stderr, /disabled \(409\)/);
    await ok(srv, ['users', 'enable', '--username', 'bob']);
  });

  it('imports users with bcrypt, PBKDF2 and argon2i hashes made elsewhere; the first login upgrades them', async () => {
    // Made by Python's bcrypt, argon2-cffi and hashlib: other implementations than ours.
    const made = await runPython(`
import base64, hashlib, json
import bcrypt, argon2
pw = "imported-Pa55word"
salt = b"latchkey-e2e-salt"
dk = hashlib.pbkdf2_hmac("sha256", pw.encode(), salt, 1000)
b64 = lambda b: base64.b64encode(b).decode().rstrip("=")
print(json.dumps({
  "bcrypt": bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode(),
  "django": "pbkdf2_sha256$1000$%s$%s" % (salt.decode(), base64.b64encode(dk).decode()),
  "phc": "$pbkdf2-sha256$i=1000,l=32$%s$%s" % (b64(salt), b64(dk)),
  "argon2i": argon2.PasswordHasher(time_cost=2, memory_cost=8192, parallelism=1, type=argon2.Type.I).hash(pw),
}))
`, [], { python: VENV_PYTHON });
    assert.equal(made.code, 0, made.stderr);
    const hashes = JSON.parse(made.stdout);
    const schemes = { bcrypt: 'bcrypt', django: 'django-pbkdf2-sha256', phc: 'pbkdf2-sha256', argon2i: 'argon2i' };
    for (const [name, hash] of Object.entries(hashes)) {
      const username = `imported-${name}`;
      await ok(srv, ['users', 'add', '--username', username, '--hash-from-stdin'], { stdin: `${hash}\n` });
      const before = jsonLines((await ok(srv, ['users', 'get', '--username', username, '--json'])).stdout)[0];
      assert.equal(before.password_scheme, schemes[name]);
      await assert.rejects(login(srv.origin, { username, password: 'imported-Pa55wor' }), /did not redirect/, `${name}: a wrong password fails`);
      const l = await login(srv.origin, { username, password: 'imported-Pa55word' });
      assert.equal(await sessionValid(srv.origin, { bearer: l.tokens.access_token }), 'true', `${name}: logged in`);
      const after = jsonLines((await ok(srv, ['users', 'get', '--username', username, '--json'])).stdout)[0];
      assert.equal(after.password_scheme, 'argon2id', `${name}: upgraded at first login`);
      await login(srv.origin, { username, password: 'imported-Pa55word' });
    }
    const costly = hashes.bcrypt.replace(/^\$2b\$04\$/, '$2b$16$');
    const refused = await srv.admin(['users', 'add', '--username', 'imported-costly', '--hash-from-stdin'], { stdin: `${costly}\n` });
    assert.equal(refused.code, 1, 'a work factor past the bound is refused at import');
    assert.match(refused.stderr, /bcrypt cost 16/);
    assert.ok(!refused.stderr.includes(costly), 'without echoing the hash');
  });

  it('a second admin key works beside the first after a restart, so keys can be replaced', async () => {
    const made = await srv.cli(['admin-key', 'create', '--data-dir', srv.dataDir]);
    assert.equal(made.code, 0, made.stderr);
    const second = made.stdout.trim();
    assert.match(second, /^lk_admin_[A-Za-z0-9_-]{43}$/);
    assert.match(made.stderr, /stored nowhere/);
    assert.equal((await api(srv, 'GET', 'users?limit=1', { key: second })).status, 401, 'not before a restart');
    await srv.restart();
    for (const key of [srv.adminKey, second]) {
      assert.equal((await api(srv, 'GET', 'users?limit=1', { key })).status, 200);
    }
    const r = await srv.admin(['users', 'list', '--limit', '1'], { env: { LATCHKEY_ADMIN_KEY: second } });
    assert.equal(r.code, 0, r.stderr);
  });

  it("accepts an operator's short-lived JWT signed by a configured key, and names them in the audit", async () => {
    const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = { ...publicKey.export({ format: 'jwk' }), kid: 'ops-e2e' };
    // The secrets file ends with the admin entry (see the harness): add the public key.
    const file = path.join(srv.dataDir, 'latchkey.secrets.yaml');
    await appendFile(file, `      jwt_keys:\n        - ${JSON.stringify(jwk)}\n`);
    await srv.restart();
    const now = Math.floor(Date.now() / 1000);
    const sign = (claims, kid = 'ops-e2e', key = privateKey) => new jose.SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid }).sign(key);
    const audience = `${srv.origin}/_api/admin/`;
    const good = await sign({ sub: 'ci-bot', aud: audience, iat: now, exp: now + 120 });
    assert.equal((await api(srv, 'GET', 'users?limit=1', { key: good })).status, 200);
    const made = await srv.admin(['users', 'add', '--username', 'made-by-jwt'], {
      stdin: 'pw-jwt-1234567\n', env: { LATCHKEY_ADMIN_KEY: good },
    });
    assert.equal(made.code, 0, `the CLI takes the token as its key: ${made.stderr}`);
    const events = JSON.parse(`[${(await srv.admin(['audit', 'tail', '--since', '120', '--json'])).stdout.trim().split('\n').join(',')}]`);
    const created = events.find((e) => e.event === 'admin.user_created' && e.user_id === made.stdout.trim());
    assert.equal(created?.client_id, 'admin:ci-bot', 'the audit names the operator');
    const other = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    for (const [what, token] of [
      ['another audience', await sign({ sub: 'ci-bot', aud: 'https://elsewhere.example/_api/admin/', iat: now, exp: now + 120 })],
      ['expired', await sign({ sub: 'ci-bot', aud: audience, iat: now - 600, exp: now - 300 })],
      ['living an hour', await sign({ sub: 'ci-bot', aud: audience, iat: now, exp: now + 3600 })],
      ['no subject', await sign({ aud: audience, iat: now, exp: now + 120 })],
      ['an unknown kid', await sign({ sub: 'ci-bot', aud: audience, iat: now, exp: now + 120 }, 'nobody')],
      ['another key', await sign({ sub: 'ci-bot', aud: audience, iat: now, exp: now + 120 }, 'ops-e2e', other)],
    ]) {
      const r = await api(srv, 'GET', 'users?limit=1', { key: token });
      assert.equal(r.status, 401, `${what}: ${r.status} ${r.text}`);
    }
    assert.equal((await api(srv, 'GET', 'users?limit=1')).status, 200, 'the admin key still works');
  });

  it('refuses to send the admin key over plain HTTP to another host', async () => {
    const r = await srv.cli(['users', 'list', '--endpoint', 'http://auth.example.test'], { env: { LATCHKEY_ADMIN_KEY: srv.adminKey } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /plain HTTP/);
  });

  if (TARGET === 'local') {
    it('every command also works on the data directory, without the server', async () => {
      await srv.stop();
      try {
        const r = await srv.cli(['users', 'list', '--data-dir', srv.dataDir, '--prefix', 'list-', '--json']);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(jsonLines(r.stdout).length, 5);
        const s = await srv.cli(['sessions', 'list', '--data-dir', srv.dataDir, '--username', 'bob', '--json']);
        assert.equal(s.code, 0, s.stderr);
      } finally {
        await srv.start();
      }
    });
  }
});
