// A real nginx with `auth_request` in front of an echo application, using
// infra/proxies/nginx/nginx.conf.template. Fails (never skips) if nginx is
// missing or does not start.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, writeFile, rm, access, constants } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEchoUpstream, waitForPort } from './lib/proxy.mjs';
import {
  startServer, login, revoke, req, freePort, sleep, Browser,
} from './harness.mjs';

const NGINX = process.env.NGINX_BIN || '/usr/sbin/nginx';
const HERE = path.dirname(fileURLToPath(import.meta.url));
const TEMPLATE = path.resolve(HERE, '../../infra/proxies/nginx/nginx.conf.template');

describe('nginx auth_request', { timeout: 120000 }, () => {
  let srv;
  let upstream;
  let nginx;
  let dir;
  let base;
  let nginxOutput = '';

  before(async () => {
    await access(NGINX, constants.X_OK).catch(() => {
      throw new Error(`nginx not found at ${NGINX} (apt-get install -y nginx, or set NGINX_BIN)`);
    });
    srv = await startServer({ users: [{ username: 'nina', verified: true, roles: ['ops', 'dev'] }] });
    upstream = await startEchoUpstream();
    dir = await mkdtemp(path.join(os.tmpdir(), 'latchkey-e2e-nginx-'));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    let conf = await readFile(TEMPLATE, 'utf8');
    // enable the documented strict variant
    conf = conf.replace(/^(\s*)#strict ?/gm, '$1');
    conf = conf
      .replaceAll('@LISTEN@', `127.0.0.1:${port}`)
      .replaceAll('@RESOLVER@', `127.0.0.1:${srv.port}`)
      .replaceAll('@UPSTREAM@', `127.0.0.1:${upstream.address().port}`)
      .replaceAll('@PREFIX@', dir);
    assert.ok(!/@[A-Z]+@/.test(conf), 'all placeholders substituted');
    await writeFile(path.join(dir, 'nginx.conf'), conf);
    const errLog = path.join(dir, 'error.log');
    const test = await new Promise((resolve) => {
      const p = spawn(NGINX, ['-t', '-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', errLog]);
      let out = '';
      p.stdout.on('data', (d) => { out += d; });
      p.stderr.on('data', (d) => { out += d; });
      p.on('close', (code) => resolve({ code, out }));
    });
    assert.equal(test.code, 0, `nginx -t rejected the config:\n${test.out}`);
    nginx = spawn(NGINX, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', errLog, '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'] });
    nginx.stdout.on('data', (d) => { nginxOutput += d; });
    nginx.stderr.on('data', (d) => { nginxOutput += d; });
    await waitForPort('nginx', port, 10000, nginx, async () => {
      try { return `error.log:\n${await readFile(errLog, 'utf8')}`; } catch { return 'no error.log'; }
    });
  });

  after(async () => {
    if (nginx && nginx.exitCode === null) {
      const exited = new Promise((r) => nginx.on('close', r));
      nginx.kill('SIGTERM');
      const t = setTimeout(() => nginx.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    if (upstream) await new Promise((r) => upstream.close(r));
    await srv?.cleanup();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function via(p = '/app', opts = {}) {
    const r = await req(`${base}${p}`, opts);
    assert.equal(r.status, 200, `via nginx ${p}: ${r.status} ${r.text.slice(0, 300)}`);
    return r.json();
  }

  const forged = {
    'X-Authgear-User-Id': 'forged-user',
    'X-Authgear-Session-Valid': 'true',
    'X-Authgear-User-Roles': 'admin',
    'X-Authgear-User-Verified': 'true',
    'X-Authgear-Session-Amr': 'mfa',
    X_Authgear_User_Id: 'forged-underscore',
  };

  function checkIdentity(id, what) {
    assert.equal(id['x-authgear-session-valid'], 'true', `${what}: valid`);
    assert.equal(id['x-authgear-user-id'], srv.userIds.nina, `${what}: user id`);
    assert.equal(id['x-authgear-user-anonymous'], 'false');
    assert.equal(id['x-authgear-user-verified'], 'true');
    assert.equal(id['x-authgear-user-can-reauthenticate'], 'true');
    assert.deepEqual(id['x-authgear-user-roles']?.split(',').sort(), ['dev', 'ops'], `${what}: roles forwarded`);
    assert.equal(id['x-authgear-session-amr'], 'pwd');
    assert.match(id['x-authgear-session-authenticated-at'] ?? '', /^\d+$/);
    assert.equal(id.x_authgear_user_id, undefined, `${what}: underscore look-alike dropped`);
  }

  it('no credential: the application sees no identity headers', async () => {
    const j = await via('/app');
    assert.deepEqual(j.identity, {});
  });

  it('forged X-Authgear-* headers without a credential never reach the application', async () => {
    const j = await via('/app', { headers: forged });
    assert.deepEqual(j.identity, {}, `upstream saw ${JSON.stringify(j.identity)}`);
  });

  it('a logged-in cookie and a bearer token: the application sees the identity (forged headers overwritten)', async () => {
    const l = await login(srv.origin, { username: 'nina' });
    const cookie = `session=${l.browser.cookie('session')}`;
    checkIdentity((await via('/app', { cookie })).identity, 'cookie');
    checkIdentity((await via('/app', { bearer: l.tokens.access_token })).identity, 'bearer');
    checkIdentity((await via('/app', { cookie, headers: forged })).identity, 'cookie + forged');
    checkIdentity((await via('/app', { bearer: l.tokens.access_token, headers: forged })).identity, 'bearer + forged');
    // a POST with a body: the sub-request is a GET without the body; the application gets the body
    const p = await via('/app/submit', { method: 'POST', form: { hello: 'world' }, cookie });
    assert.equal(p.method, 'POST');
    assert.equal(p.body, 'hello=world');
    checkIdentity(p.identity, 'POST');
  });

  it('after revoking the session the application sees Session-Valid false and no user id', async () => {
    const l = await login(srv.origin, { username: 'nina' });
    checkIdentity((await via('/app', { bearer: l.tokens.access_token })).identity, 'before revoke');
    assert.equal((await revoke(srv.origin, l.tokens.refresh_token)).status, 200);
    const j = await via('/app', { bearer: l.tokens.access_token, headers: forged });
    assert.equal(j.identity['x-authgear-session-valid'], 'false', JSON.stringify(j.identity));
    assert.equal(j.identity['x-authgear-user-id'], undefined, 'no user id after revocation');
    assert.deepEqual(Object.keys(j.identity), ['x-authgear-session-valid']);

    // a cookie session ended by end_session
    const b = new Browser(srv.origin);
    const l2 = await login(srv.origin, { username: 'nina', browser: b });
    const cookie = `session=${b.cookie('session')}`;
    checkIdentity((await via('/app', { cookie })).identity, 'cookie before logout');
    const out = await req(`${srv.origin}/oauth2/end_session?id_token_hint=${encodeURIComponent(l2.tokens.id_token)}`);
    assert.ok(out.status === 200 || out.status === 302, `end_session ${out.status}`);
    const r = await req(`${base}/app`, { cookie });
    assert.equal(r.status, 200);
    const jc = r.json();
    assert.equal(jc.identity['x-authgear-session-valid'], 'false');
    assert.equal(jc.identity['x-authgear-user-id'], undefined);
    // the resolver's clearing Set-Cookie is passed on to the browser
    assert.ok(r.setCookies.some((c) => /^session=/.test(c)), `clearing cookie forwarded: ${JSON.stringify(r.setCookies)}`);
  });

  it('strict variant: 401 without a valid session, identity with one', async () => {
    const none = await req(`${base}/strict/x`);
    assert.equal(none.status, 401, `strict without credential: ${none.status}`);
    assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
    const bad = await req(`${base}/strict/x`, { bearer: 'garbage', headers: forged });
    assert.equal(bad.status, 401);
    const l = await login(srv.origin, { username: 'nina' });
    const ok = await req(`${base}/strict/x`, { bearer: l.tokens.access_token, headers: forged });
    assert.equal(ok.status, 200, ok.text);
    checkIdentity(ok.json().identity, 'strict');
  });

  it('the internal resolver location is not reachable from outside', async () => {
    const r = await req(`${base}/_latchkey_resolve`);
    assert.equal(r.status, 404);
  });
});

