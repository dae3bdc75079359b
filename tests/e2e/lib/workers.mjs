// The Cloudflare Workers target of the end-to-end suite (LATCHKEY_E2E_TARGET=workers).
//
// Each test server is the Worker of functions/worker (the bundle scripts/build-worker
// makes) under `wrangler dev --local`, i.e. workerd with real Durable Objects whose
// state persists in the server's data directory, so a restart keeps every session.
// Configuration reaches the Worker as in a deployment: latchkey.yaml as the variable
// LATCHKEY_CONFIG, latchkey.secrets.yaml as LATCHKEY_SECRETS (a secret in production;
// a variable of the generated test config here), the admin key's SHA-256 as
// LATCHKEY_ADMIN_KEY_SHA256. Each (re)start reads the files again, so a test that
// rewrites its keys and restarts sees them, as a new deployment would. Users are
// managed with `latchkey --endpoint` through the admin API, the operator interface of
// this target (harness.mjs runs the CLI so).
//
// Nothing here skips: a missing tool or bundle fails the calling hook with the reason.
import { spawn } from 'node:child_process';
import { readFile, writeFile, access, constants, mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import crypto from 'node:crypto';
import { freePort, waitForPort } from './net.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..', '..');
const WRANGLER = path.join(REPO, 'infra', 'cloudflare', 'node_modules', '.bin', 'wrangler');
/** The bundle to serve: functions/worker/build unless LATCHKEY_WORKER_BUILD names another. */
export const BUILD = process.env.LATCHKEY_WORKER_BUILD || path.join(REPO, 'functions', 'worker', 'build');
// The same compatibility date and bindings as infra/cloudflare/wrangler.toml.
const DEPLOYED = await readFile(path.join(REPO, 'infra', 'cloudflare', 'wrangler.toml'), 'utf8');
export const COMPATIBILITY_DATE = DEPLOYED.match(/^compatibility_date = "([^"]+)"/m)[1];

const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try { process.kill(-c.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

async function mustExist(file, hint) {
  try { await access(file, constants.R_OK); } catch { throw new Error(`${file} not found: ${hint}`); }
}

/** A TOML basic string (JSON's escapes are TOML's). */
const tomlString = (s) => JSON.stringify(s);

/** Spawns `wrangler dev` for one test server; resolves {logs(), stop(), adminKey}. */
export async function startWorker({ port, dataDir, build = BUILD, extraEnv = {} }) {
  await mustExist(WRANGLER, 'run scripts/test once (it installs infra/cloudflare/node_modules)');
  await mustExist(path.join(build, 'index.js'), 'build the Worker first: scripts/build-worker');
  const adminKey = await adminKeyOf(dataDir);
  const vars = {
    LATCHKEY_CONFIG: await readFile(path.join(dataDir, 'latchkey.yaml'), 'utf8'),
    LATCHKEY_SECRETS: await readFile(path.join(dataDir, 'latchkey.secrets.yaml'), 'utf8'),
    LATCHKEY_ADMIN_KEY_SHA256: crypto.createHash('sha256').update(adminKey).digest('hex'),
    LATCHKEY_LOG: 'info',
    ...extraEnv,
  };
  const dir = path.join(dataDir, 'worker');
  await mkdir(dir, { recursive: true });
  const config = path.join(dir, 'wrangler.toml');
  await writeFile(config, [
    'name = "latchkey-e2e"',
    `main = ${tomlString(path.join(build, 'index.js'))}`,
    `compatibility_date = ${tomlString(COMPATIBILITY_DATE)}`,
    '[[durable_objects.bindings]]',
    'name = "LATCHKEY_OBJECTS"',
    'class_name = "LatchkeyObject"',
    '[[migrations]]',
    'tag = "v1"',
    'new_sqlite_classes = ["LatchkeyObject"]',
    '[vars]',
    ...Object.entries(vars).map(([k, v]) => `${k} = ${tomlString(v)}`),
    '',
  ].join('\n'));
  // Its own inspector port too: the default (9229) is one per machine.
  const inspectorPort = await freePort();
  const proc = spawn(WRANGLER, ['dev', '--local', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspectorPort), '--config', config,
    '--persist-to', path.join(dataDir, 'wrangler-state'), '--show-interactive-dev-session=false'], {
    cwd: dir,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      WRANGLER_SEND_METRICS: 'false',
      WRANGLER_SEND_ERROR_REPORTS: 'false',
      CLOUDFLARE_CF_FETCH_ENABLED: 'false',
      // wrangler writes its own logs and caches under HOME; keep them per server.
      XDG_CONFIG_HOME: path.join(dir, 'config'),
      NO_COLOR: '1',
      FORCE_COLOR: '0',
    },
  });
  children.add(proc);
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => proc.on('close', (code, signal) => { children.delete(proc); resolve({ code, signal }); }));
  const handle = {
    adminKey,
    logs: () => log,
    kill(sig = 'SIGTERM') { try { process.kill(-proc.pid, sig); } catch { /* gone */ } },
    async stop(graceMs = 3000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      // The whole process group: killing only wrangler would leave workerd running.
      handle.kill('SIGTERM');
      const t = setTimeout(() => handle.kill('SIGKILL'), graceMs);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
  try {
    await waitForPort('wrangler dev', port, 60000, proc, () => log);
    // Listening is not ready: wait for the Worker itself to answer.
    const end = Date.now() + 30000;
    for (;;) {
      const ok = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(5000) })
        .then((r) => r.status === 200, () => false);
      if (ok) break;
      if (Date.now() > end || proc.exitCode !== null) throw new Error(`the Worker did not answer /healthz\n${log}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    // And that the Worker answering is this one: its admin key, unlike any other
    // test server's, is accepted (a 404 for a user nobody has, not a 401).
    const probe = await admin(`http://127.0.0.1:${port}`, adminKey, 'GET', '/_api/admin/users?username=__latchkey_probe__');
    if (probe.status !== 404) {
      throw new Error(`another server answers on port ${port}: the admin key got ${probe.status} ${JSON.stringify(probe.json)}\n${log}`);
    }
  } catch (e) {
    await handle.stop();
    throw e;
  }
  return handle;
}

/** The admin key of the server in `dataDir` (made on first use, kept for restarts). */
export async function adminKeyOf(dataDir) {
  const file = path.join(dataDir, 'admin-key');
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    const key = crypto.randomBytes(24).toString('base64url');
    await writeFile(file, key, { mode: 0o600 });
    return key;
  }
}

async function admin(origin, adminKey, method, p, body) {
  const res = await fetch(new URL(p, origin), {
    method,
    headers: { authorization: `Bearer ${adminKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(30000),
  });
  return { status: res.status, json: await res.json().catch(() => null) };
}

