// User import and export through the operator CLI and the admin API, on every target:
// a JSON Lines file with good and bad lines is imported line by line (bad lines are
// reported and skipped, nothing is half-made), a second run changes nothing, and an
// export imports into another deployment with the same ids and passwords.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startServer, login, resolve, sessionValid, runPython } from './harness.mjs';

const VENV_PYTHON = `${process.env.LATCHKEY_VENV || `${process.env.HOME || '/root'}/.cache/latchkey-venv`}/bin/python`;
const jsonLines = (stdout) => stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));

describe('user import and export', { timeout: 300000 }, () => {
  let srv;
  let other;
  let dir;
  let hashes;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'latchkey-import-'));
    [srv, other] = await Promise.all([
      startServer({ users: [{ username: 'existing' }] }),
      startServer({ users: [] }),
    ]);
    // Hashes made by other implementations than Latchkey's (Python's bcrypt, hashlib).
    const made = await runPython(`
import base64, hashlib, json
import bcrypt
salt = b"import-salt"
dk = hashlib.pbkdf2_hmac("sha256", b"django-Pa55word", salt, 1200)
print(json.dumps({
  "bcrypt": bcrypt.hashpw(b"bcrypt-Pa55word", bcrypt.gensalt(rounds=4)).decode(),
  "django": "pbkdf2_sha256$1200$%s$%s" % (salt.decode(), base64.b64encode(dk).decode()),
}))
`, [], { python: VENV_PYTHON });
    assert.equal(made.code, 0, made.stderr);
    hashes = JSON.parse(made.stdout);
  });
  after(async () => {
    await Promise.all([srv?.cleanup(), other?.cleanup()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const lines = () => [
    /* 1 */ JSON.stringify({ username: 'imp-plain', password: 'plain-Pa55word', is_verified: true, roles: ['a', 'b'] }),
    /* 2 */ JSON.stringify({ username: 'imp-bcrypt', password_hash: hashes.bcrypt }),
    /* 3 */ JSON.stringify({ username: 'imp-django', password_hash: hashes.django, id: 'legacy|00042', created_at: 1500000000 }),
    /* 4 */ '{"username": "imp-broken", ',
    /* 5 */ '["not", "an", "object"]',
    /* 6 */ JSON.stringify({ password: 'no-username-123' }),
    /* 7 */ JSON.stringify({ username: 'imp-short', password: 'short' }),
    /* 8 */ JSON.stringify({ username: 'imp-md5', password_hash: '5f4dcc3b5aa765d61d8327deb882cf99' }),
    /* 9 */ JSON.stringify({ username: 'imp-extra', password: 'extra-Pa55word', superuser: true }),
    /* 10 */ JSON.stringify({ username: 'existing', password: 'other-Pa55word' }),
    /* 11 */ JSON.stringify({ username: 'imp-plain', password: 'second-Pa55word' }),
    /* 12 */ '',
    /* 13 */ JSON.stringify({ username: 'imp-gone', password: 'gone-Pa55word', disabled: true, disabled_reason: 'left' }),
    /* 14 */ JSON.stringify({ username: 'imp-badid', password: 'badid-Pa55word', id: 'has spaces' }),
  ].join('\n');

  it('imports the good lines, reports every bad one, and changes nothing on a second run', async () => {
    const file = path.join(dir, 'users.jsonl');
    await writeFile(file, `${lines()}\n`);
    const r = await srv.admin(['users', 'import', file, '--json']);
    assert.equal(r.code, 1, `rejected lines make the exit status 1\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /7 line\(s\) rejected/);
    const byLine = Object.fromEntries(jsonLines(r.stdout).map((x) => [x.line, x]));
    const status = Object.fromEntries(Object.entries(byLine).map(([l, x]) => [l, x.status]));
    assert.deepEqual(status, {
      1: 'created', 2: 'created', 3: 'created', 4: 'rejected', 5: 'rejected', 6: 'rejected', 7: 'rejected',
      8: 'rejected', 9: 'rejected', 10: 'skipped', 11: 'skipped', 13: 'created', 14: 'rejected',
    }, JSON.stringify(byLine, null, 1));
    assert.match(byLine[4].reason, /invalid JSON/);
    assert.match(byLine[5].reason, /not a JSON object/);
    assert.match(byLine[6].reason, /username/);
    assert.match(byLine[7].reason, /8 to 1024 characters/);
    assert.match(byLine[8].reason, /unsupported password hash/);
    assert.match(byLine[9].reason, /superuser/);
    assert.match(byLine[14].reason, /id must be/);
    assert.equal(byLine[3].id, 'legacy|00042', 'the id is kept');
    assert.ok(!r.stdout.includes('5f4dcc3b5aa765d61d8327deb882cf99'), 'no hash is echoed');

    const again = await srv.admin(['users', 'import', file]);
    assert.match(again.stdout, /created 0, skipped 6, rejected 7/, `${again.stdout}\n${again.stderr}`);
    assert.match(again.stdout, /^LINE\s+USERNAME\s+STATUS\s+REASON/m, 'a table of what was not created');
  });

  it('imported users log in with their passwords, keep their ids, and stay disabled if they were', async () => {
    const plain = await login(srv.origin, { username: 'imp-plain', password: 'plain-Pa55word' });
    const r = await resolve(srv.origin, { bearer: plain.tokens.access_token });
    assert.equal(r.ag['x-authgear-user-verified'], 'true');
    assert.equal(r.ag['x-authgear-user-roles'], 'a,b');
    const b = await login(srv.origin, { username: 'imp-bcrypt', password: 'bcrypt-Pa55word' });
    assert.equal(await sessionValid(srv.origin, { bearer: b.tokens.access_token }), 'true');
    const d = await login(srv.origin, { username: 'imp-django', password: 'django-Pa55word' });
    const dr = await resolve(srv.origin, { bearer: d.tokens.access_token });
    assert.equal(dr.ag['x-authgear-user-id'], 'legacy|00042', 'sub and X-Authgear-User-Id are the imported id');
    await assert.rejects(login(srv.origin, { username: 'imp-gone', password: 'gone-Pa55word' }), /did not redirect/);
    await assert.rejects(login(srv.origin, { username: 'existing', password: 'other-Pa55word' }), /did not redirect/,
      'a skipped line changed nothing');
  });

  it('exports every user with its hash, and the export imports into another deployment as it is', async () => {
    const exported = await srv.admin(['users', 'export']);
    assert.equal(exported.code, 0, exported.stderr);
    const users = jsonLines(exported.stdout);
    const names = users.map((u) => u.username);
    for (const n of ['existing', 'imp-plain', 'imp-bcrypt', 'imp-django', 'imp-gone']) assert.ok(names.includes(n), n);
    for (const u of users) assert.match(u.password_hash, /^\$|^pbkdf2_sha256\$/, `${u.username} has its hash`);
    const file = path.join(dir, 'export.jsonl');
    await writeFile(file, exported.stdout);
    const imported = await other.admin(['users', 'import', file, '--json']);
    assert.equal(imported.code, 0, `${imported.stdout}\n${imported.stderr}`);
    assert.ok(jsonLines(imported.stdout).every((x) => x.status === 'created'));
    const moved = jsonLines((await other.admin(['users', 'export'])).stdout);
    const strip = (list) => list.map(({ password_scheme: _s, ...u }) => u).sort((x, y) => (x.username < y.username ? -1 : 1));
    assert.deepEqual(strip(moved), strip(users), 'ids, hashes, roles, times and disabled state all moved');
    const l = await login(other.origin, { username: 'imp-django', password: 'django-Pa55word' });
    const r = await resolve(other.origin, { bearer: l.tokens.access_token });
    assert.equal(r.ag['x-authgear-user-id'], 'legacy|00042');
    await assert.rejects(login(other.origin, { username: 'imp-gone', password: 'gone-Pa55word' }), /did not redirect/);
  });

  it('exports the active sessions of every user, without secrets', async () => {
    const l = await login(srv.origin, { username: 'imp-bcrypt', password: 'bcrypt-Pa55word' });
    const r = await srv.admin(['sessions', 'export']);
    assert.equal(r.code, 0, r.stderr);
    const sessions = jsonLines(r.stdout);
    const mine = sessions.filter((s) => s.username === 'imp-bcrypt');
    assert.ok(mine.some((s) => s.kind === 'token' && s.client_id === 'demo'), JSON.stringify(mine));
    assert.ok(mine.every((s) => s.user_id === mine[0].user_id));
    for (const secret of [l.tokens.refresh_token, l.tokens.access_token, l.browser.cookie('session')]) {
      assert.ok(!r.stdout.includes(secret.split('.').pop()), 'no token or cookie');
    }
    assert.ok(!/secret_hash|refresh/.test(r.stdout), 'nor their hashes');
  });
});
