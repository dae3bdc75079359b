// A real Caddy (Debian's caddy) with `forward_auth` in front of an echo application,
// using infra/proxies/caddy/Caddyfile.template. Fails (never skips) if caddy is
// missing or does not start.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, writeFile, rm, access, constants } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEchoUpstream, waitForPort } from './lib/proxy.mjs';
import { startServer, login, revoke, req, freePort, sleep, Browser, authorize } from './harness.mjs';

const CADDY = process.env.CADDY_BIN || '/usr/bin/caddy';
const HERE = path.dirname(fileURLToPath(import.meta.url));
const TEMPLATE = path.resolve(HERE, '../../infra/proxies/caddy/Caddyfile.template');

/** Absent, or Caddy 2.6's unreplaced placeholder: either way no identity. */
function anonymous(value) {
  return value === undefined || /^\{http\.reverse_proxy\.header\.[A-Za-z-]+\}$/.test(value);
}

describe('Caddy forward_auth', { timeout: 120000 }, () => {
  let srv;
  let upstream;
  let caddy;
  let dir;
  let base;
  let output = '';

  before(async () => {
    await access(CADDY, constants.X_OK).catch(() => {
      throw new Error(`caddy not found at ${CADDY} (apt-get install -y caddy, or set CADDY_BIN)`);
    });
    srv = await startServer({ users: [{ username: 'cody', verified: true, roles: ['ops'] }] });
    upstream = await startEchoUpstream();
    dir = await mkdtemp(path.join(os.tmpdir(), 'latchkey-e2e-caddy-'));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const conf = (await readFile(TEMPLATE, 'utf8'))
      .replaceAll('@LISTEN@', `http://127.0.0.1:${port}`)
      .replaceAll('@RESOLVER@', `127.0.0.1:${srv.port}`)
      .replaceAll('@UPSTREAM@', `127.0.0.1:${upstream.address().port}`);
    const file = path.join(dir, 'Caddyfile');
    await writeFile(file, conf);
    caddy = spawn(CADDY, ['run', '--config', file, '--adapter', 'caddyfile'], {
      env: { ...process.env, HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    caddy.stdout.on('data', (d) => { output += d; });
    caddy.stderr.on('data', (d) => { output += d; });
    await waitForPort('caddy', port, 15000, caddy, () => output);
  });

  after(async () => {
    if (caddy && caddy.exitCode === null) {
      caddy.kill('SIGTERM');
      await new Promise((r) => { caddy.once('exit', r); setTimeout(r, 5000); });
      if (caddy.exitCode === null) caddy.kill('SIGKILL');
    }
    await new Promise((r) => (upstream ? upstream.close(r) : r()));
    await srv?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function through(p, headers = {}) {
    const r = await req(`${base}${p}`, { headers });
    return { status: r.status, body: r.status === 200 ? r.json() : null };
  }

  it('a signed-in cookie reaches the application with the identity headers', async () => {
    const a = await authorize(srv.origin, { username: 'cody' });
    const cookie = `session=${a.browser.cookie('session')}`;
    const r = await through('/app', { cookie });
    assert.equal(r.status, 200);
    assert.equal(r.body.identity['x-authgear-session-valid'], 'true');
    assert.equal(r.body.identity['x-authgear-user-id'], srv.userIds.cody);
    assert.equal(r.body.identity['x-authgear-user-roles'], 'ops');
    assert.equal(r.body.identity['x-authgear-user-verified'], 'true');
  });

  it('a bearer token reaches the application with the identity headers', async () => {
    const { tokens } = await login(srv.origin, { username: 'cody' });
    const r = await through('/app', { authorization: `Bearer ${tokens.access_token}` });
    assert.equal(r.body.identity['x-authgear-user-id'], srv.userIds.cody);
  });

  it('client-forged X-Authgear-* headers never reach the application', async () => {
    const forged = { 'x-authgear-session-valid': 'true', 'x-authgear-user-id': 'admin', 'x-authgear-user-roles': 'root' };
    const r = await through('/app', forged);
    assert.equal(r.status, 200);
    // Caddy 2.6 (Debian 12) fills headers absent from the auth response with the literal
    // placeholder text; what matters is that no forged value survives.
    for (const [k, v] of Object.entries(forged)) {
      assert.ok(anonymous(r.body.identity[k]), `${k} reached the application as ${JSON.stringify(r.body.identity[k])}`);
    }
    const { tokens } = await login(srv.origin, { username: 'cody' });
    const r2 = await through('/app', { ...forged, authorization: `Bearer ${tokens.access_token}` });
    assert.equal(r2.body.identity['x-authgear-user-id'], srv.userIds.cody, 'the resolver, not the client, decides');
    assert.equal(r2.body.identity['x-authgear-user-roles'], 'ops');
  });

  it('after a revocation the application sees an unauthenticated request', async () => {
    const { tokens } = await login(srv.origin, { username: 'cody' });
    const bearer = { authorization: `Bearer ${tokens.access_token}` };
    assert.equal((await through('/app', bearer)).body.identity['x-authgear-session-valid'], 'true');
    assert.equal((await revoke(srv.origin, tokens.refresh_token)).status, 200);
    const r = await through('/app', bearer);
    assert.equal(r.body.identity['x-authgear-session-valid'], 'false');
    assert.ok(anonymous(r.body.identity['x-authgear-user-id']), `user id after revocation: ${r.body.identity['x-authgear-user-id']}`);
  });

  it('strict variant: anonymous and revoked requests are blocked with 401, signed-in ones pass', async () => {
    assert.equal((await through('/strict/x')).status, 401);
    const { tokens } = await login(srv.origin, { username: 'cody' });
    const bearer = { authorization: `Bearer ${tokens.access_token}` };
    const ok = await through('/strict/x', bearer);
    assert.equal(ok.status, 200);
    assert.equal(ok.body.identity['x-authgear-user-id'], srv.userIds.cody);
    await revoke(srv.origin, tokens.refresh_token);
    assert.equal((await through('/strict/x', bearer)).status, 401);
  });
});
