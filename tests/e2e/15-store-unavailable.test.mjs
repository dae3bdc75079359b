// Store unavailable: while another process holds SQLite's write lock longer
// than the server's busy timeout, writes fail with 503 + Retry-After (JSON
// temporarily_unavailable on API endpoints), never a 500 or a hang, and
// nothing is lost once the lock is released. Uses python3's sqlite3 module
// (or the sqlite3 shell) to hold the lock; the test fails if neither exists.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import {
  startServer, login, refresh, resolve, authorizeUrl, pkce, randomString, Browser, DEMO_REDIRECT, DEFAULT_PASSWORD,
} from './harness.mjs';

const PY = process.env.PYTHON_BIN || 'python3';
const LOCKER = `
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
c.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
c.execute("ROLLBACK")
`;

function lockerCommand(dbPath) {
  // python3's sqlite3 module, or the sqlite3 shell: whichever the machine has.
  return [
    [PY, ['-c', LOCKER, dbPath], ''],
    [process.env.SQLITE3_BIN || 'sqlite3', ['-cmd', '.timeout 10000', dbPath], 'BEGIN IMMEDIATE;\n.print locked\n'],
  ];
}

function tryLock([cmd, args, input]) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const exited = new Promise((r) => p.on('close', r));
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`${cmd}: could not lock: ${err}`)); }, 15000);
    p.on('error', (e) => { clearTimeout(t); reject(Object.assign(new Error(`${cmd}: ${e.message}`), { code: e.code })); });
    p.stderr.on('data', (d) => { err += d; });
    p.stdout.on('data', (d) => {
      out += d;
      if (out.includes('locked')) {
        clearTimeout(t);
        resolve({
          async release() { p.stdin.end(); const k = setTimeout(() => p.kill('SIGKILL'), 5000); await exited; clearTimeout(k); },
          kill() { try { p.kill('SIGKILL'); } catch { /* gone */ } },
        });
      }
    });
    p.on('close', (code) => { clearTimeout(t); reject(new Error(`${cmd} exited ${code} before locking: ${err}`)); });
    p.stdin.on('error', () => {});
    if (input) p.stdin.write(input);
  });
}

/** Hold SQLite's write lock on dbPath until release() is called. */
async function holdWriteLock(dbPath) {
  const errors = [];
  for (const c of lockerCommand(dbPath)) {
    try {
      return await tryLock(c);
    } catch (e) {
      errors.push(e.message);
      if (e.code !== 'ENOENT') break;
    }
  }
  throw new Error(`cannot hold the SQLite write lock (needs python3 or sqlite3): ${errors.join('; ')}`);
}

describe('store unavailable', { timeout: 90000 }, () => {
  let srv;
  let lock;
  before(async () => { srv = await startServer(); });
  after(async () => { lock?.kill(); await srv?.cleanup(); });

  it('a refresh during a long write lock → 503 temporarily_unavailable with Retry-After; it works afterwards', async () => {
    const l = await login(srv.origin);
    lock = await holdWriteLock(path.join(srv.dataDir, 'latchkey.sqlite3'));
    const t0 = Date.now();
    let r;
    try {
      r = await refresh(srv.origin, l.tokens.refresh_token);
    } finally {
      await lock.release();
    }
    const took = Date.now() - t0;
    assert.equal(r.status, 503, `refresh while locked: ${r.status} ${r.text} after ${took} ms`);
    assert.ok(r.headers.get('retry-after'), 'Retry-After');
    assert.match(r.headers.get('content-type') ?? '', /application\/json/);
    assert.equal(r.json().error, 'temporarily_unavailable');
    assert.ok(took < 20000, `answered within 20 s (took ${took})`);
    // the token was not consumed: it works now (and the session is alive)
    const ok = await refresh(srv.origin, l.tokens.refresh_token);
    assert.equal(ok.status, 200, `after the lock: ${ok.text}`);
    assert.equal((await resolve(srv.origin, { bearer: ok.json().access_token })).ag['x-authgear-session-valid'], 'true');
  });

  it('a login during a long write lock → 503 HTML page with Retry-After, never a 500', async () => {
    const b = new Browser(srv.origin);
    const { challenge } = pkce();
    const page = await b.go(authorizeUrl(srv.origin, {
      response_type: 'code', client_id: 'demo', redirect_uri: DEMO_REDIRECT, scope: 'openid', state: randomString(),
      code_challenge: challenge, code_challenge_method: 'S256',
    }));
    assert.equal(page.status, 200);
    lock = await holdWriteLock(path.join(srv.dataDir, 'latchkey.sqlite3'));
    let r;
    try {
      r = await b.submit(page, { username: 'alice', password: DEFAULT_PASSWORD });
    } finally {
      await lock.release();
    }
    assert.equal(r.status, 503, `login while locked: ${r.status} ${r.location}`);
    assert.ok(r.headers.get('retry-after'), 'Retry-After');
    assert.match(r.headers.get('content-type') ?? '', /text\/html/);
    assert.equal(r.location, null);
  });
});
