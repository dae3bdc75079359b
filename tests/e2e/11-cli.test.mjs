// The CLI: init, serve (auto-init, env vars), users add, graceful SIGTERM and
// persistence across restarts.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, stat, rm, readdir } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  runCli, spawnServe, freePort, startServer, login, refresh, resolve, req, getJson, DEFAULT_PASSWORD, sleep,
} from './harness.mjs';

const dirs = [];
const handles = [];
after(async () => {
  await Promise.all(handles.map((h) => h.stop()));
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function tmp() {
  const d = await mkdtemp(path.join(os.tmpdir(), 'latchkey-e2e-cli-'));
  dirs.push(d);
  return d;
}

describe('cli', { timeout: 120000 }, () => {
  it('init writes config, secrets (0600) and database; defaults the public origin; refuses to run twice', async () => {
    const d = await tmp();
    const r = await runCli(['init', '--data-dir', d]);
    assert.equal(r.code, 0, `init: ${r.stderr}`);
    const files = await readdir(d);
    for (const f of ['latchkey.yaml', 'latchkey.secrets.yaml', 'latchkey.sqlite3']) assert.ok(files.includes(f), `${f} created (have ${files})`);
    const mode = (await stat(path.join(d, 'latchkey.secrets.yaml'))).mode & 0o777;
    assert.equal(mode, 0o600, `secrets mode ${mode.toString(8)}`);
    const cfg = await readFile(path.join(d, 'latchkey.yaml'), 'utf8');
    assert.match(cfg, /public_origin:\s*["']?http:\/\/127\.0\.0\.1:3000["']?/, 'default public origin');
    const secrets = await readFile(path.join(d, 'latchkey.secrets.yaml'), 'utf8');
    assert.match(secrets, /key:\s*["']?oauth["']?/, 'secrets have the oauth key set');

    const again = await runCli(['init', '--data-dir', d]);
    assert.equal(again.code, 1, `second init exits 1 (got ${again.code})`);
    assert.ok(again.stderr.trim().length > 0, 'with a message on stderr');
    assert.equal(await readFile(path.join(d, 'latchkey.yaml'), 'utf8'), cfg, 'config untouched');
    assert.equal(await readFile(path.join(d, 'latchkey.secrets.yaml'), 'utf8'), secrets, 'secrets untouched');
  });

  it('init --public-origin is written to the config', async () => {
    const d = await tmp();
    assert.equal((await runCli(['init', '--data-dir', d, '--public-origin', 'https://id.example.test'])).code, 0);
    assert.match(await readFile(path.join(d, 'latchkey.yaml'), 'utf8'), /https:\/\/id\.example\.test/);
  });

  it('users add prints an id; a duplicate username fails', async () => {
    const d = await tmp();
    assert.equal((await runCli(['init', '--data-dir', d])).code, 0);
    const a = await runCli(['users', 'add', '--data-dir', d, '--username', 'zoe'], { stdin: 'pw-zoe-123456\n' });
    assert.equal(a.code, 0, a.stderr);
    const id = a.stdout.trim();
    assert.ok(id.length > 0 && !/\s/.test(id), `a user id on stdout: ${JSON.stringify(a.stdout)}`);
    const b = await runCli(['users', 'add', '--data-dir', d, '--username', 'zoe'], { stdin: 'other-password-123\n' });
    assert.equal(b.code, 1, `duplicate exits 1 (got ${b.code}; stdout ${b.stdout})`);
    assert.ok(b.stderr.trim().length > 0, 'duplicate: a message');
    const c = await runCli(['users', 'add', '--data-dir', d, '--username', 'yan', '--verified', '--role', 'x', '--role', 'y'], { stdin: 'pw-yan-123456\nignored second line\n' });
    assert.equal(c.code, 0, c.stderr);
    assert.notEqual(c.stdout.trim(), id, 'ids are distinct');
  });

  it('users disable/enable of an unknown user fails with a message', async () => {
    const d = await tmp();
    assert.equal((await runCli(['init', '--data-dir', d])).code, 0);
    for (const cmd of ['disable', 'enable']) {
      const r = await runCli(['users', cmd, '--data-dir', d, '--username', 'ghost']);
      assert.equal(r.code, 1, `users ${cmd} ghost: exit ${r.code}`);
      assert.ok(r.stderr.trim().length > 0, 'a message');
    }
  });

  it('serve on an address in use exits 1 with a message, without the listening line', async () => {
    const blocker = net.createServer();
    await new Promise((r) => blocker.listen(0, '127.0.0.1', r));
    const port = blocker.address().port;
    try {
      const d = await tmp();
      const h = await spawnServe(['--data-dir', d, '--listen', `127.0.0.1:${port}`], { waitForListening: false });
      handles.push(h);
      const t = setTimeout(() => h.kill('SIGKILL'), 10000);
      const r = await h.exited;
      clearTimeout(t);
      assert.equal(r.code, 1, `exit code (got ${JSON.stringify(r)})`);
      assert.ok(!h.stdout.includes('latchkey listening on'), 'never claims to listen');
      assert.ok(h.stderr.includes(String(port)), `stderr names the address: ${h.stderr}`);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  it('serve on an empty dir initialises it, prints what it created, and listens', async () => {
    const parent = await tmp();
    for (const d of [parent, path.join(parent, 'does', 'not', 'exist')]) {
      const port = await freePort();
      const h = await spawnServe(['--data-dir', d, '--listen', `127.0.0.1:${port}`]);
      handles.push(h);
      assert.ok(h.stdout.includes(`latchkey listening on http://127.0.0.1:${port}`), `listening line: ${h.stdout}`);
      assert.ok(/latchkey\.yaml/.test(h.stdout), `prints what it created: ${h.stdout}`);
      const files = await readdir(d);
      for (const f of ['latchkey.yaml', 'latchkey.secrets.yaml', 'latchkey.sqlite3']) assert.ok(files.includes(f), `${f} in ${d}`);
      const disc = await getJson(`http://127.0.0.1:${port}/.well-known/openid-configuration`);
      assert.equal(disc.issuer, `http://127.0.0.1:${port}`, 'public origin http://<listen addr>');
      const r = await h.stop();
      assert.equal(r.code, 0);
    }
  });

  it('SIGTERM right after "latchkey listening on" still exits 0 (ready means signals are handled)', async () => {
    const results = [];
    for (let i = 0; i < 5; i++) {
      const d = await tmp();
      const port = await freePort();
      const h = await spawnServe(['--data-dir', d, '--listen', `127.0.0.1:${port}`]);
      handles.push(h);
      h.kill('SIGTERM'); // the moment the line was printed
      const t = setTimeout(() => h.kill('SIGKILL'), 5000);
      results.push(await h.exited);
      clearTimeout(t);
    }
    assert.deepEqual(results, Array(5).fill({ code: 0, signal: null }),
      `SIGTERM immediately after the listening line: ${JSON.stringify(results)}`);
  });

  it('serve reads LATCHKEY_DATA_DIR and LATCHKEY_LISTEN', async () => {
    const d = await tmp();
    const port = await freePort();
    const h = await spawnServe([], { env: { LATCHKEY_DATA_DIR: d, LATCHKEY_LISTEN: `127.0.0.1:${port}`, LATCHKEY_LOG_FORMAT: 'json' } });
    handles.push(h);
    const disc = await getJson(`http://127.0.0.1:${port}/.well-known/openid-configuration`);
    assert.equal(disc.issuer, `http://127.0.0.1:${port}`);
    assert.ok((await readdir(d)).includes('latchkey.yaml'));
    assert.equal((await h.stop()).code, 0);
  });

  it('serve --log-format json still starts', async () => {
    const d = await tmp();
    const port = await freePort();
    const h = await spawnServe(['--data-dir', d, '--listen', `127.0.0.1:${port}`, '--log-format', 'json']);
    handles.push(h);
    assert.equal((await req(`http://127.0.0.1:${port}/oauth2/jwks`)).status, 200);
    assert.equal((await h.stop()).code, 0);
  });
});

describe('SIGTERM and restart', { timeout: 120000 }, () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(async () => { await srv?.cleanup(); });

  it('SIGTERM exits 0 promptly; sessions survive a restart on the same data dir', async () => {
    const l = await login(srv.origin);
    const cookie = `session=${l.browser.cookie('session')}`;
    const t0 = Date.now();
    const r = await srv.stop();
    const took = Date.now() - t0;
    assert.equal(r.signal, null, `exited by itself, not killed (took ${took} ms)`);
    assert.equal(r.code, 0, 'exit code 0 on SIGTERM');
    assert.ok(took < 5000, `exited within 5 s (took ${took} ms)`);
    await srv.start();
    const b = await resolve(srv.origin, { bearer: l.tokens.access_token });
    assert.equal(b.ag['x-authgear-session-valid'], 'true', 'bearer still valid after restart');
    const c = await resolve(srv.origin, { cookie });
    assert.equal(c.ag['x-authgear-session-valid'], 'true', 'cookie still valid after restart');
    const rr = await refresh(srv.origin, l.tokens.refresh_token);
    assert.equal(rr.status, 200, rr.text);
  });

  it('users add while the server runs: the user can log in at once; passwords keep spaces and non-ASCII', async () => {
    const pw = '  pässwörd with spaces ✓  ';
    const r = await runCli(['users', 'add', '--data-dir', srv.dataDir, '--username', 'live'], { stdin: `${pw}\n` });
    assert.equal(r.code, 0, r.stderr);
    const l = await login(srv.origin, { username: 'live', password: pw });
    const v = await resolve(srv.origin, { bearer: l.tokens.access_token });
    assert.equal(v.ag['x-authgear-user-id'], r.stdout.trim(), 'the printed id is the user id');
  });

  it('SIGTERM finishes an in-flight request', async () => {
    const l = await login(srv.origin);
    const body = new URLSearchParams({ grant_type: 'refresh_token', client_id: 'demo', refresh_token: l.tokens.refresh_token }).toString();
    const half = Math.floor(body.length / 2);
    const sock = net.connect({ host: '127.0.0.1', port: srv.port });
    await new Promise((res, rej) => { sock.on('connect', res); sock.on('error', rej); });
    let response = '';
    sock.on('data', (d) => { response += d; });
    const closed = new Promise((res) => sock.on('close', res));
    sock.on('error', () => {});
    sock.write(`POST /oauth2/token HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nContent-Type: application/x-www-form-urlencoded\r\n` +
      `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.slice(0, half)}`);
    await sleep(300);
    srv.kill('SIGTERM');
    await sleep(300);
    // stopped accepting: a new request is not served while the old one drains
    const fresh = await req(`${srv.origin}/oauth2/jwks`, { timeoutMs: 1500 }).then((r) => r.status, (e) => `error: ${e.cause?.code ?? e.name}`);
    assert.notEqual(fresh, 200, 'a new request after SIGTERM is not served');
    sock.write(body.slice(half));
    await Promise.race([closed, sleep(8000)]);
    sock.destroy();
    assert.match(response, /^HTTP\/1\.1 200/, `the in-flight request completed: ${JSON.stringify(response.slice(0, 200))}`);
    const r = await srv.stop();
    assert.equal(r.code, 0, 'exit 0');
    await srv.start();
    // new listener works after restart
    assert.equal((await req(`${srv.origin}/oauth2/jwks`)).status, 200);
  });
});
