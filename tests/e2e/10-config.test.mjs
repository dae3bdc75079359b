// Config validation: `serve` refuses a bad config with exit code 1 and a
// message naming the key, and never starts listening.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import {
  runCli, spawnServe, freePort, toYaml, baseConfig, demoClient, backendClient, addClientSecrets, BACKEND_SECRET,
} from './harness.mjs';

const dirs = [];
after(async () => { await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))); });

function connectable(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('connect', () => { s.destroy(); resolve(true); });
    s.on('error', () => resolve(false));
  });
}

async function serveWith(configText, { secrets = { backend: BACKEND_SECRET } } = {}) {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'latchkey-e2e-cfg-'));
  dirs.push(dataDir);
  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const init = await runCli(['init', '--data-dir', dataDir, '--public-origin', origin]);
  assert.equal(init.code, 0, `init: ${init.stderr}`);
  await writeFile(path.join(dataDir, 'latchkey.yaml'), typeof configText === 'function' ? configText(origin) : configText);
  await addClientSecrets(dataDir, secrets);
  const h = await spawnServe(['--data-dir', dataDir, '--listen', `127.0.0.1:${port}`], { waitForListening: false });
  const timer = setTimeout(() => h.kill('SIGKILL'), 10000);
  const { code, signal } = await h.exited;
  clearTimeout(timer);
  return { code, signal, stdout: h.stdout, stderr: h.stderr, port, open: await connectable(port) };
}

function expectRefused(r, needle, what) {
  assert.equal(r.signal, null, `${what}: exited by itself (not killed after 10 s; stdout ${r.stdout})`);
  assert.equal(r.code, 1, `${what}: exit code 1 (got ${r.code}); stderr: ${r.stderr}`);
  assert.ok(!r.stdout.includes('latchkey listening on'), `${what}: never listening`);
  assert.equal(r.open, false, `${what}: port not open`);
  if (needle) assert.ok(r.stderr.includes(needle), `${what}: stderr names "${needle}"; stderr was: ${r.stderr}`);
}

describe('config validation', { timeout: 120000 }, () => {
  it('a good config starts (control)', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'latchkey-e2e-cfg-'));
    dirs.push(dataDir);
    const port = await freePort();
    const origin = `http://127.0.0.1:${port}`;
    assert.equal((await runCli(['init', '--data-dir', dataDir, '--public-origin', origin])).code, 0);
    await writeFile(path.join(dataDir, 'latchkey.yaml'), toYaml(baseConfig(origin)));
    await addClientSecrets(dataDir, { backend: BACKEND_SECRET });
    const h = await spawnServe(['--data-dir', dataDir, '--listen', `127.0.0.1:${port}`]);
    try {
      assert.ok(await connectable(port));
    } finally {
      await h.stop();
    }
  });

  it('a minimal config (only required keys; every other key defaults) starts', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'latchkey-e2e-cfg-'));
    dirs.push(dataDir);
    const port = await freePort();
    const origin = `http://127.0.0.1:${port}`;
    assert.equal((await runCli(['init', '--data-dir', dataDir, '--public-origin', origin])).code, 0);
    await writeFile(path.join(dataDir, 'latchkey.yaml'), toYaml({
      http: { public_origin: origin },
      oauth: { clients: [{ client_id: 'demo', name: 'Demo', x_application_type: 'spa', redirect_uris: ['http://127.0.0.1:4000/callback'] }] },
    }));
    const h = await spawnServe(['--data-dir', dataDir, '--listen', `127.0.0.1:${port}`]);
    try {
      assert.ok(await connectable(port));
    } finally {
      await h.stop();
    }
  });

  it('bad redirect URI → names oauth.clients[0].redirect_uris[1]', async () => {
    const r = await serveWith((o) => toYaml(baseConfig(o, {
      clients: [demoClient({ redirect_uris: ['http://127.0.0.1:4000/callback', 'not a uri'] }), backendClient()],
    })));
    expectRefused(r, 'oauth.clients[0].redirect_uris[1]', 'bad redirect uri');
  });

  it('bad redirect URI in the second client → names oauth.clients[1].redirect_uris[0]', async () => {
    const r = await serveWith((o) => toYaml(baseConfig(o, {
      clients: [demoClient(), backendClient({ redirect_uris: ['::::'] })],
    })));
    expectRefused(r, 'oauth.clients[1].redirect_uris[0]', 'bad redirect uri #2');
  });

  it('unknown top-level key → named', async () => {
    const r = await serveWith((o) => toYaml({ ...baseConfig(o), frobnicate_everything: true }));
    expectRefused(r, 'frobnicate_everything', 'unknown top-level key');
  });

  it('unknown nested key → named', async () => {
    const r = await serveWith((o) => toYaml(baseConfig(o, { http: { cookie_flavour: 'choc' } })));
    expectRefused(r, 'cookie_flavour', 'unknown key under http');
    const r2 = await serveWith((o) => toYaml(baseConfig(o, { clients: [demoClient({ redirect_url: 'x' }), backendClient()] })));
    expectRefused(r2, 'redirect_url', 'unknown key in a client');
  });

  it('missing http.public_origin → named', async () => {
    const r = await serveWith((o) => {
      const c = baseConfig(o);
      delete c.http.public_origin;
      return toYaml(c);
    });
    expectRefused(r, 'public_origin', 'missing public_origin');
  });

  it('lifetime 0 → named', async () => {
    const r = await serveWith((o) => toYaml(baseConfig(o, {
      clients: [demoClient({ access_token_lifetime_seconds: 0 }), backendClient()],
    })));
    expectRefused(r, 'oauth.clients[0].access_token_lifetime_seconds', 'zero lifetime');
  });

  it('wrong type → named', async () => {
    const r = await serveWith((o) => toYaml(baseConfig(o, { session: { lifetime_seconds: 'forever' } })));
    expectRefused(r, 'session.lifetime_seconds', 'string lifetime');
  });

  it('confidential client without a secret → refused', async () => {
    const r = await serveWith((o) => toYaml(baseConfig(o)), { secrets: {} });
    expectRefused(r, null, 'confidential without secret');
    assert.ok(r.stderr.includes('backend') || r.stderr.includes('oauth.clients[1]'), `names the client: ${r.stderr}`);
  });

  it('m2m client without a secret → refused', async () => {
    const r = await serveWith((o) => toYaml(baseConfig(o, {
      clients: [demoClient(), backendClient(), { client_id: 'machine', name: 'M', x_application_type: 'm2m', grant_types: ['client_credentials'] }],
    })));
    expectRefused(r, null, 'm2m without secret');
    assert.ok(r.stderr.includes('machine') || r.stderr.includes('oauth.clients[2]'), `names the client: ${r.stderr}`);
  });

  it('unknown x_application_type → named', async () => {
    const r = await serveWith((o) => toYaml(baseConfig(o, { clients: [demoClient({ x_application_type: 'toaster' }), backendClient()] })));
    expectRefused(r, 'oauth.clients[0].x_application_type', 'bad application type');
  });

  it('spa client with a secret → refused', async () => {
    const r = await serveWith((o) => toYaml(baseConfig(o)), { secrets: { backend: BACKEND_SECRET, demo: 'spa-secret-0123456789abcdef' } });
    expectRefused(r, null, 'spa with secret');
    assert.ok(r.stderr.includes('demo') || r.stderr.includes('oauth.clients[0]'), `names the client: ${r.stderr}`);
  });

  it('unparsable YAML → refused', async () => {
    const r = await serveWith('http: [unclosed\n  public_origin: :\n');
    expectRefused(r, null, 'broken yaml');
    assert.ok(r.stderr.trim().length > 0, 'a message');
  });
});
