// Test harness for the Latchkey end-to-end suite.
//
// It starts the real `latchkey` binary (LATCHKEY_BIN, default
// $CARGO_TARGET_DIR/debug/latchkey) on a free port with a throw-away data
// directory, and offers small HTTP helpers: a cookie-jar "browser" that follows
// same-origin redirects and can submit our login form, PKCE helpers, JWT
// decoding/verification with node:crypto, and a resolver helper.
//
// Nothing here skips a test: if the binary is missing or does not start, the
// calling hook throws and every test of the file fails.

import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, writeFile, readFile, appendFile, rm, access, constants } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { freePort } from './lib/net.mjs';

export { freePort };

export const CARGO_TARGET_DIR = process.env.CARGO_TARGET_DIR || '/root/latchkey-target';
export const LATCHKEY_BIN = process.env.LATCHKEY_BIN || path.join(CARGO_TARGET_DIR, 'debug', 'latchkey');
/**
 * `local` (the latchkey binary on SQLite), `lambda` (the functions under cargo lambda
 * watch, see lib/lambda.mjs) or `workers` (the Worker under wrangler dev, see lib/workers.mjs).
 */
export const TARGET = process.env.LATCHKEY_E2E_TARGET || 'local';
if (!['local', 'lambda', 'workers'].includes(TARGET)) throw new Error(`LATCHKEY_E2E_TARGET=${TARGET}: expected local, lambda or workers`);
export const LATCHKEY_AWS_BIN = process.env.LATCHKEY_AWS_BIN || path.join(CARGO_TARGET_DIR, 'debug', 'latchkey-aws');
const lambda = TARGET === 'lambda' ? await import('./lib/lambda.mjs') : null;
const workers = TARGET === 'workers' ? await import('./lib/workers.mjs') : null;
/** data dir -> running Worker {origin, adminKey}, for the account commands of the Workers target. */
const workerServers = new Map();
/** data dir -> DynamoDB table, for the account commands of the Lambda target. */
const tables = new Map();

export const DEMO_REDIRECT = 'http://127.0.0.1:4000/callback';
export const DEMO_REDIRECT_LOCALHOST = 'http://localhost:4000/callback';
export const DEMO_POST_LOGOUT = 'http://127.0.0.1:4000/';
export const BACKEND_REDIRECT = 'http://127.0.0.1:4001/callback';
export const BACKEND_SECRET = 'backend-secret-0123456789abcdefABCDEF';
export const DEFAULT_PASSWORD = 'correct horse battery staple';

export const CLAIM = {
  anonymous: 'https://authgear.com/claims/user/is_anonymous',
  verified: 'https://authgear.com/claims/user/is_verified',
  canReauth: 'https://authgear.com/claims/user/can_reauthenticate',
  roles: 'https://authgear.com/claims/user/roles',
};

// workerd under wrangler dev runs the Worker's isolate on one thread, and RSA signing
// in wasm takes tens of milliseconds: a 50-way refresh race queues for seconds there.
const FETCH_TIMEOUT_MS = TARGET === 'workers' ? 60000 : 15000;

// ---------------------------------------------------------------------------
// processes

const live = new Set();
process.on('exit', () => {
  // Last resort: never leave a child behind, even if an after() hook did not run.
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

async function assertBinary() {
  try {
    await access(LATCHKEY_BIN, constants.X_OK);
  } catch {
    throw new Error(`latchkey binary not found or not executable at ${LATCHKEY_BIN} ` +
      '(set LATCHKEY_BIN, or build with `cargo build -p latchkey`)');
  }
}

/**
 * Run a latchkey CLI command to completion. Resolves {code, signal, stdout, stderr}.
 * On the Lambda target, account commands (`users ...`) on a test server's data dir
 * run as `latchkey-aws users ... --table <its table>`, the operator CLI of that target.
 */
export async function runCli(args, { stdin, timeoutMs = 20000, env } = {}) {
  const dirAt = args.indexOf('--data-dir');
  if (lambda && args[0] === 'users' && dirAt >= 0 && tables.has(args[dirAt + 1])) {
    const awsArgs = [...args.slice(0, dirAt), '--table', tables.get(args[dirAt + 1]), ...args.slice(dirAt + 2)];
    return lambda.latchkeyAws(LATCHKEY_AWS_BIN, awsArgs, { stdin, timeoutMs, env });
  }
  // On Workers, whose state no data directory holds, the same command goes to the
  // running Worker's admin API: `latchkey --endpoint`, the operator interface there.
  if (workers && ['users', 'sessions'].includes(args[0]) && dirAt >= 0 && workerServers.has(args[dirAt + 1])) {
    const { origin, adminKey } = workerServers.get(args[dirAt + 1]);
    const remote = [...args.slice(0, dirAt), '--endpoint', origin, ...args.slice(dirAt + 2)];
    return runCli(remote, { stdin, timeoutMs: Math.max(timeoutMs, 60000), env: { ...env, LATCHKEY_ADMIN_KEY: adminKey } });
  }
  await assertBinary();
  return new Promise((resolve, reject) => {
    const p = spawn(LATCHKEY_BIN, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, RUST_BACKTRACE: '1', ...env },
    });
    live.add(p);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => {
      p.kill('SIGKILL');
      reject(new Error(`latchkey ${args.join(' ')} timed out after ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    p.on('error', (e) => { clearTimeout(timer); live.delete(p); reject(e); });
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(p);
      resolve({ code, signal, stdout, stderr });
    });
    p.stdin.on('error', () => { /* the process may not read stdin */ });
    if (stdin !== undefined) p.stdin.end(stdin);
    else p.stdin.end();
  });
}

async function mustCli(args, opts) {
  const r = await runCli(args, opts);
  if (r.code !== 0) {
    throw new Error(`latchkey ${args.join(' ')} exited ${r.code} (signal ${r.signal})\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return r;
}

/**
 * Spawn `latchkey serve` and wait for `latchkey listening on`.
 * Returns a handle {proc, logs(), stop(), kill(), exited}.
 */
export async function spawnServe(args, { timeoutMs = 20000, env, waitForListening = true } = {}) {
  await assertBinary();
  const p = spawn(LATCHKEY_BIN, ['serve', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_BACKTRACE: '1', ...env },
  });
  live.add(p);
  const h = {
    proc: p,
    stdout: '',
    stderr: '',
    log: '',
    exitCode: undefined,
    exitSignal: undefined,
  };
  h.exited = new Promise((resolve) => {
    p.on('close', (code, signal) => {
      live.delete(p);
      h.exitCode = code;
      h.exitSignal = signal;
      resolve({ code, signal });
    });
  });
  p.on('error', (e) => { h.spawnError = e; });
  p.stdout.on('data', (d) => { h.stdout += d; h.log += d; });
  p.stderr.on('data', (d) => { h.stderr += d; h.log += d; });
  h.logs = () => h.log;
  h.kill = (sig = 'SIGTERM') => { try { p.kill(sig); } catch { /* gone */ } };
  h.stop = async (graceMs = 5000) => {
    if (h.exitCode !== undefined || h.exitSignal !== undefined) return h.exited;
    h.kill('SIGTERM');
    const t = setTimeout(() => h.kill('SIGKILL'), graceMs);
    const r = await h.exited;
    clearTimeout(t);
    return r;
  };
  if (!waitForListening) return h;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      h.kill('SIGKILL');
      reject(new Error(`latchkey serve ${args.join(' ')} did not print "latchkey listening on" within ${timeoutMs} ms\n` +
        `stdout: ${h.stdout}\nstderr: ${h.stderr}`));
    }, timeoutMs);
    const check = () => {
      if (h.stdout.includes('latchkey listening on')) {
        clearTimeout(timer);
        p.stdout.off('data', check);
        resolve();
      }
    };
    p.stdout.on('data', check);
    h.exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`latchkey serve ${args.join(' ')} exited (code ${code}, signal ${signal}) before listening` +
        `${h.spawnError ? ` (${h.spawnError.message})` : ''}\nstdout: ${h.stdout}\nstderr: ${h.stderr}`));
    });
    check();
  });
  return h;
}

// ---------------------------------------------------------------------------
// config

/** Minimal YAML emitter (block style, JSON-quoted strings: valid YAML 1.1/1.2). */
export function toYaml(value, indent = 0) {
  const pad = ' '.repeat(indent);
  const scalar = (v) => {
    if (v === null || v === undefined) return 'null';
    if (typeof v === 'string') return JSON.stringify(v);
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    throw new Error(`not a scalar: ${v}`);
  };
  const key = (k) => (/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(k) ? k : JSON.stringify(k));
  const isScalar = (v) => v === null || typeof v !== 'object';
  if (Array.isArray(value)) {
    if (value.length === 0) return `${pad}[]\n`;
    return value.map((item) => {
      if (isScalar(item)) return `${pad}- ${scalar(item)}\n`;
      if (Array.isArray(item)) return `${pad}-\n${toYaml(item, indent + 2)}`;
      if (Object.keys(item).length === 0) return `${pad}- {}\n`;
      const inner = toYaml(item, indent + 2);
      return `${pad}- ${inner.slice(indent + 2)}`;
    }).join('');
  }
  if (isScalar(value)) return `${pad}${scalar(value)}\n`;
  let out = '';
  for (const [k, v] of Object.entries(value)) {
    if (v === undefined) continue;
    if (isScalar(v)) out += `${pad}${key(k)}: ${scalar(v)}\n`;
    else if (Array.isArray(v) && v.length === 0) out += `${pad}${key(k)}: []\n`;
    else if (!Array.isArray(v) && Object.keys(v).length === 0) out += `${pad}${key(k)}: {}\n`;
    else out += `${pad}${key(k)}:\n${toYaml(v, indent + 2)}`;
  }
  return out;
}

/** A client entry with the contract's example values as defaults. */
export function clientConfig(overrides = {}) {
  return {
    client_id: 'demo',
    name: 'Demo app',
    x_application_type: 'spa',
    redirect_uris: [DEMO_REDIRECT, DEMO_REDIRECT_LOCALHOST],
    post_logout_redirect_uris: [DEMO_POST_LOGOUT],
    grant_types: ['authorization_code', 'refresh_token'],
    access_token_lifetime_seconds: 1800,
    refresh_token_lifetime_seconds: 31449600,
    refresh_token_idle_timeout_enabled: true,
    refresh_token_idle_timeout_seconds: 2592000,
    refresh_token_rotation_enabled: true,
    ...overrides,
  };
}

export function demoClient(overrides = {}) {
  return clientConfig(overrides);
}

export function backendClient(overrides = {}) {
  return clientConfig({
    client_id: 'backend',
    name: 'Backend app',
    x_application_type: 'confidential',
    redirect_uris: [BACKEND_REDIRECT],
    post_logout_redirect_uris: ['http://127.0.0.1:4001/'],
    grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    ...overrides,
  });
}

/** The whole latchkey.yaml as an object. */
/**
 * Rate limits high enough that the suite's own bursts from 127.0.0.1 are never throttled;
 * the rate-limit tests pass their own.
 */
export const GENEROUS_RATE_LIMITS = Object.fromEntries(
  ['token_per_ip', 'token_per_user', 'client_credentials_per_client', 'login_failures_per_ip', 'login_failures_per_user_ip']
    .map((k) => [k, { limit: 1000000, window_seconds: 60 }]),
);

export function baseConfig(origin, { http: httpOver = {}, session = {}, jwt = {}, resolver = {}, ui = {}, clients, rate_limits, lockout, keys } = {}) {
  return {
    http: {
      public_origin: origin,
      allowed_origins: [],
      cookie_prefix: '',
      ...httpOver,
    },
    session: {
      lifetime_seconds: 31449600,
      idle_timeout_enabled: true,
      idle_timeout_seconds: 2592000,
      ...session,
    },
    jwt: { time_tolerance_seconds: 60, ...jwt },
    resolver: { strict: false, ...resolver },
    ui: { product_name: 'Latchkey', ...ui },
    oauth: { clients: clients ?? [demoClient(), backendClient()] },
    rate_limits: rate_limits ?? GENEROUS_RATE_LIMITS,
    ...(lockout ? { lockout } : {}),
    ...(keys ? { keys } : {}),
  };
}

/** Append an `oauth.client_secrets` entry to the secrets file `init` wrote. */
export async function addClientSecrets(dataDir, secrets) {
  const entries = Object.entries(secrets);
  if (entries.length === 0) return;
  const file = path.join(dataDir, 'latchkey.secrets.yaml');
  const text = await readFile(file, 'utf8');
  if (/^\s*- *key: *["']?oauth\.client_secrets/m.test(text)) {
    throw new Error(`harness: ${file} already has an oauth.client_secrets entry; cannot append`);
  }
  const m = text.match(/^( *)- *key: *["']?oauth["']? *$/m);
  if (!m) {
    throw new Error(`harness: cannot find the "- key: oauth" entry in ${file}:\n${text.slice(0, 200)}`);
  }
  const ind = m[1];
  let block = `${text.endsWith('\n') ? '' : '\n'}${ind}- key: oauth.client_secrets\n${ind}  data:\n${ind}    items:\n`;
  for (const [clientId, secret] of entries) {
    const k = Buffer.from(secret, 'utf8').toString('base64url');
    block += `${ind}      - client_id: ${JSON.stringify(clientId)}\n${ind}        keys:\n` +
      `${ind}          - kty: oct\n${ind}            k: ${JSON.stringify(k)}\n`;
  }
  await appendFile(file, block);
}

// ---------------------------------------------------------------------------
// servers

const servers = new Set();

/**
 * Start a fresh server.
 * opts.config(origin) -> config object (default baseConfig(origin))
 * opts.users: [{username, password?, verified?, roles?}]
 * opts.clientSecrets: {clientId: secret} (default {backend: BACKEND_SECRET})
 * opts.algorithm: RS256 | ES256 | EdDSA
 */
export async function startServer(opts = {}) {
  await assertBinary();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'latchkey-e2e-'));
  const port = opts.port ?? await freePort();
  const origin = `http://127.0.0.1:${port}`;
  const initArgs = ['init', '--data-dir', dataDir, '--public-origin', origin];
  if (opts.algorithm) initArgs.push('--algorithm', opts.algorithm);
  await mustCli(initArgs);
  const config = (opts.config ?? ((o) => baseConfig(o)))(origin);
  await writeFile(path.join(dataDir, 'latchkey.yaml'), typeof config === 'string' ? config : toYaml(config));
  await addClientSecrets(dataDir, opts.clientSecrets ?? { backend: BACKEND_SECRET });
  // Every test server has the admin API on, with a key of its own (kept in the data
  // directory for restarts; lib/workers.mjs reads it there too).
  const adminKey = (await mustCli(['admin-key', 'create', '--data-dir', dataDir])).stdout.trim();
  await writeFile(path.join(dataDir, 'admin-key'), adminKey, { mode: 0o600 });
  if (lambda) {
    const table = lambda.newTableName();
    const r = await lambda.latchkeyAws(LATCHKEY_AWS_BIN, ['--table', table, 'table', 'create']);
    if (r.code !== 0) throw new Error(`latchkey-aws table create failed: ${r.stderr}`);
    tables.set(dataDir, table);
  }
  const userIds = {};
  // On Workers, users are created through the running Worker's admin API.
  if (!workers) {
    for (const u of opts.users ?? [{ username: 'alice' }]) {
      userIds[u.username] = await addUser(dataDir, u);
    }
  }
  const srv = {
    origin,
    port,
    dataDir,
    adminKey,
    userIds,
    handle: null,
    previousLogs: '',
    logs() { return this.previousLogs + (this.handle ? this.handle.logs() : ''); },
    async start() {
      if (lambda) {
        // The functions always log JSON lines, so that flag is already in effect there;
        // any other flag of `latchkey serve` has no Lambda equivalent.
        const args = (opts.serveArgs ?? []).join(' ');
        if (args && args !== '--log-format json') throw new Error(`serveArgs ${args} apply to the local server only`);
        this.handle = await lambda.startFunctions({
          port, dataDir, table: tables.get(dataDir), secretName: `latchkey/${path.basename(dataDir)}`,
          targetDir: CARGO_TARGET_DIR, extraEnv: opts.serveEnv,
        });
        return this;
      }
      if (workers) {
        const args = (opts.serveArgs ?? []).join(' ');
        if (args && args !== '--log-format json') throw new Error(`serveArgs ${args} apply to the local server only`);
        this.handle = await workers.startWorker({ port, dataDir, extraEnv: opts.serveEnv });
        workerServers.set(dataDir, { origin, adminKey: this.handle.adminKey });
        return this;
      }
      this.handle = await spawnServe(['--data-dir', dataDir, '--listen', `127.0.0.1:${port}`, ...(opts.serveArgs ?? [])],
        { env: opts.serveEnv });
      return this;
    },
    async stop() {
      if (!this.handle) return undefined;
      const r = await this.handle.stop();
      this.previousLogs += this.handle.logs();
      this.handle = null;
      return r;
    },
    kill(sig = 'SIGTERM') { if (this.handle) this.handle.kill(sig); },
    async restart() { await this.stop(); return this.start(); },
    async cleanup() {
      await this.stop();
      servers.delete(this);
      // Keep every server's log for post-mortems (tests/e2e/artifacts/ is gitignored).
      try {
        const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'artifacts');
        await mkdir(dir, { recursive: true });
        const test = path.basename(process.argv[1] ?? 'run', '.mjs');
        await writeFile(path.join(dir, `${test}-${port}.log`), this.logs());
      } catch { /* best effort */ }
      if (!process.env.LATCHKEY_E2E_KEEP) await rm(dataDir, { recursive: true, force: true });
    },
    cli(args, cliOpts) { return runCli(args, cliOpts); },
    /** A `latchkey` operator command against this server's admin API (`--endpoint`). */
    admin(args, cliOpts = {}) {
      return runCli([...args, '--endpoint', origin], {
        timeoutMs: TARGET === 'local' ? 20000 : 60000,
        ...cliOpts,
        env: { LATCHKEY_ADMIN_KEY: adminKey, ...cliOpts.env },
      });
    },
    addUser(u) { return addUser(dataDir, u).then((id) => { userIds[u.username] = id; return id; }); },
    url(p) { return new URL(p, origin).toString(); },
  };
  servers.add(srv);
  try {
    await srv.start();
    if (workers) {
      for (const u of opts.users ?? [{ username: 'alice' }]) {
        userIds[u.username] = await addUser(dataDir, u);
      }
    }
  } catch (e) {
    await srv.cleanup();
    throw e;
  }
  return srv;
}

export async function stopAll() {
  await Promise.all([...servers].map((s) => s.cleanup()));
}

export async function addUser(dataDir, { username, password = DEFAULT_PASSWORD, verified = false, roles = [] }) {
  const args = ['users', 'add', '--data-dir', dataDir, '--username', username];
  if (verified) args.push('--verified');
  for (const r of roles) args.push('--role', r);
  const r = await runCli(args, { stdin: `${password}\n` });
  if (r.code !== 0) throw new Error(`${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r.stdout.trim();
}

// ---------------------------------------------------------------------------
// HTTP

/**
 * fetch wrapper: never follows redirects, reads the body, and times out.
 * opts: method, headers, form (object|URLSearchParams|string), json, body, bearer, basic [id, secret], cookie, origin
 */
export async function req(url, opts = {}) {
  const headers = new Headers(opts.headers ?? {});
  let body = opts.body;
  if (opts.form !== undefined) {
    body = typeof opts.form === 'string' ? opts.form : new URLSearchParams(
      opts.form instanceof URLSearchParams ? opts.form
        : Object.entries(opts.form).filter(([, v]) => v !== undefined && v !== null),
    ).toString();
    if (!headers.has('content-type')) headers.set('content-type', 'application/x-www-form-urlencoded');
  }
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers.set('content-type', 'application/json');
  }
  if (opts.bearer) headers.set('authorization', `Bearer ${opts.bearer}`);
  if (opts.basic) headers.set('authorization', basicAuth(opts.basic[0], opts.basic[1]));
  if (opts.cookie) headers.set('cookie', opts.cookie);
  if (opts.origin) headers.set('origin', opts.origin);
  const method = opts.method ?? (body !== undefined ? 'POST' : 'GET');
  const res = await fetch(url, {
    method,
    headers,
    body,
    redirect: 'manual',
    signal: AbortSignal.timeout(opts.timeoutMs ?? FETCH_TIMEOUT_MS),
  });
  const text = method === 'HEAD' ? '' : await res.text();
  return wrapResponse(res.status, res.headers, text, url);
}

function wrapResponse(status, headers, text, url) {
  return {
    status,
    headers,
    text,
    url: String(url),
    get location() { return headers.get('location'); },
    setCookies: typeof headers.getSetCookie === 'function' ? headers.getSetCookie() : [],
    json() {
      try { return JSON.parse(text); } catch (e) {
        throw new Error(`response from ${url} (status ${status}) is not JSON: ${text.slice(0, 300)}`);
      }
    },
  };
}

export function basicAuth(id, secret) {
  // RFC 6749 2.3.1: form-urlencode both parts before base64.
  const enc = (s) => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
}

/**
 * Raw HTTP/1.1 request over node:http (for bodies fetch cannot express, and to
 * survive a server that answers before reading the whole body).
 * Resolves {status, headers (lower-case object), text, body (Buffer)}.
 */
export async function raw(origin, opts = {}) {
  try {
    return await rawOnce(origin, opts);
  } catch (e) {
    // wrangler dev's local proxy in front of workerd now and then drops a fresh
    // connection before it forwards the request ("socket hang up", no response at all).
    // On that target only, and only then, the request is sent once more: any answer,
    // a 5xx or a hang included, still counts.
    if (TARGET === 'workers' && /socket hang up|ECONNRESET/.test(e.message)) return rawOnce(origin, opts);
    throw e;
  }
}

function rawOnce(origin, { method = 'GET', path: p = '/', headers = {}, body, chunked = false, timeoutMs = FETCH_TIMEOUT_MS } = {}) {
  const u = new URL(origin);
  return new Promise((resolve, reject) => {
    let settled = false;
    // Node frames a GET body only when chunked encoding is asked for explicitly.
    const lenHeader = body === undefined ? {} : chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': Buffer.byteLength(body) };
    const r = http.request({
      host: u.hostname, port: u.port, method, path: p,
      headers: { connection: 'close', ...headers, ...lenHeader },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      const done = () => {
        if (settled) return;
        settled = true;
        const buf = Buffer.concat(chunks);
        resolve({ status: res.statusCode, headers: res.headers, body: buf, text: buf.toString('utf8'),
          json() { try { return JSON.parse(buf.toString('utf8')); } catch { throw new Error(`not JSON (status ${res.statusCode}): ${buf.toString('utf8').slice(0, 300)}`); } } });
      };
      res.on('end', done);
      res.on('close', done);
      res.on('error', done);
    });
    r.setTimeout(timeoutMs, () => {
      if (!settled) { settled = true; r.destroy(); reject(new Error(`${method} ${p}: no response within ${timeoutMs} ms (hang)`)); }
    });
    r.on('error', (e) => {
      // An early response followed by a reset is fine; an error before any response is not.
      setTimeout(() => { if (!settled) { settled = true; reject(new Error(`${method} ${p}: ${e.message}`)); } }, 200);
    });
    if (body !== undefined && chunked) {
      const b = Buffer.from(body);
      for (let i = 0; i < b.length; i += 8192) r.write(b.subarray(i, i + 8192));
    } else if (body !== undefined) r.write(body);
    r.end();
  });
}

/**
 * Write raw bytes to the server and parse the HTTP response head.
 * Resolves {status, head, text}. For requests node:http refuses to send.
 */
export function rawSocket(origin, bytes, { timeoutMs = FETCH_TIMEOUT_MS } = {}) {
  const u = new URL(origin);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: u.hostname, port: Number(u.port) });
    const chunks = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const buf = Buffer.concat(chunks);
      const text = buf.toString('latin1');
      const m = text.match(/^HTTP\/1\.[01] (\d{3})/);
      if (!m) { reject(new Error(`no HTTP response to raw request: ${JSON.stringify(text.slice(0, 200))}`)); return; }
      const i = text.indexOf('\r\n\r\n');
      const head = text.slice(0, i === -1 ? text.length : i);
      const headers = {};
      for (const line of head.split('\r\n').slice(1)) {
        const j = line.indexOf(':');
        if (j > 0) headers[line.slice(0, j).trim().toLowerCase()] = line.slice(j + 1).trim();
      }
      resolve({ status: Number(m[1]), head, headers, text: i === -1 ? '' : buf.subarray(i + 4).toString('utf8') });
    };
    const timer = setTimeout(() => {
      if (chunks.length) { sock.destroy(); finish(); return; }
      done = true; sock.destroy(); reject(new Error(`raw request: no response within ${timeoutMs} ms (hang)`));
    }, timeoutMs);
    sock.on('data', (d) => {
      chunks.push(d);
      // stop once a complete response with Content-Length has arrived
      const t = Buffer.concat(chunks).toString('latin1');
      const i = t.indexOf('\r\n\r\n');
      if (i !== -1) {
        const cl = t.slice(0, i).match(/\r\ncontent-length:\s*(\d+)/i);
        if (cl && Buffer.concat(chunks).length >= i + 4 + Number(cl[1])) { sock.destroy(); finish(); }
      }
    });
    sock.on('end', finish);
    sock.on('close', finish);
    sock.on('error', () => { if (chunks.length) finish(); });
    sock.write(bytes);
  });
}

// ---------------------------------------------------------------------------
// cookies and the browser

export function parseSetCookie(str) {
  const parts = str.split(';').map((s) => s.trim());
  const [nv, ...rest] = parts;
  const eq = nv.indexOf('=');
  const cookie = { name: nv.slice(0, eq).trim(), value: nv.slice(eq + 1).trim(), attrs: {}, raw: str };
  for (const a of rest) {
    if (!a) continue;
    const i = a.indexOf('=');
    const k = (i === -1 ? a : a.slice(0, i)).trim().toLowerCase();
    const v = i === -1 ? true : a.slice(i + 1).trim();
    cookie.attrs[k] = v;
  }
  return cookie;
}

export function isClearing(c) {
  if (c.attrs['max-age'] !== undefined && Number(c.attrs['max-age']) <= 0) return true;
  if (c.attrs.expires && Date.parse(c.attrs.expires) < Date.now()) return true;
  return false;
}

const ENTITIES = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", '#39': "'", '#x27': "'", '#x2F': '/', '#47': '/' };
export function decodeEntities(s) {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-zA-Z]+);/g, (m, e) => {
    if (e[0] === '#') {
      const n = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return String.fromCodePoint(n);
    }
    return ENTITIES[e] ?? m;
  });
}

function parseAttrs(tag) {
  const attrs = {};
  const re = /([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  const inner = tag.replace(/^<\s*[a-zA-Z]+/, '').replace(/\/?>$/, '');
  let m;
  while ((m = re.exec(inner))) {
    attrs[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attrs;
}

/** Parse the forms of a page: [{action, method, fields: {name: value}, inputs: [attrs]}]. */
export function parseForms(html) {
  const forms = [];
  const re = /<form\b[^>]*>([\s\S]*?)<\/form>/gi;
  let m;
  while ((m = re.exec(html))) {
    const tag = m[0].match(/^<form\b[^>]*>/i)[0];
    const fa = parseAttrs(tag);
    const inputs = [];
    const fields = {};
    const ire = /<(input|button)\b[^>]*>/gi;
    let im;
    while ((im = ire.exec(m[1]))) {
      const a = parseAttrs(im[0]);
      a.tag = im[1].toLowerCase();
      inputs.push(a);
      if (!a.name) continue;
      if (a.tag === 'button') continue; // buttons are added explicitly by callers
      if ((a.type === 'checkbox' || a.type === 'radio') && a.checked === undefined) continue;
      fields[a.name] = a.value ?? '';
    }
    forms.push({ action: fa.action ?? '', method: (fa.method ?? 'get').toLowerCase(), fields, inputs, attrs: fa });
  }
  return forms;
}

export function parseForm(html) {
  const f = parseForms(html);
  if (f.length === 0) throw new Error(`no <form> in page:\n${html.slice(0, 500)}`);
  return f[0];
}

export class Browser {
  constructor(origin) {
    this.origin = new URL(origin).origin;
    this.jar = new Map(); // name -> parsed cookie
    this.history = [];
  }

  cookie(name) { return this.jar.get(name)?.value; }

  setCookie(name, value, attrs = { path: '/' }) { this.jar.set(name, { name, value, attrs }); }

  clear() { this.jar.clear(); }

  cookieHeader(url) {
    const p = new URL(url).pathname;
    const list = [];
    for (const c of this.jar.values()) {
      const cp = c.attrs.path || '/';
      if (p === cp || p.startsWith(cp.endsWith('/') ? cp : `${cp}/`) || cp === '/') list.push(`${c.name}=${c.value}`);
    }
    return list.join('; ');
  }

  store(res) {
    for (const sc of res.setCookies) {
      const c = parseSetCookie(sc);
      if (isClearing(c) || c.value === '') this.jar.delete(c.name);
      else this.jar.set(c.name, c);
    }
  }

  /** One request with cookies; records Set-Cookie. No redirect following. */
  async fetch(url, opts = {}) {
    const headers = { ...(opts.headers ?? {}) };
    const ch = this.cookieHeader(url);
    if (ch) headers.cookie = ch;
    const res = await req(url, { ...opts, headers });
    this.store(res);
    this.history.push(res);
    return res;
  }

  /** GET (or the given method) and follow redirects while they stay on the server origin. */
  async go(url, opts = {}) {
    let res = await this.fetch(url, opts);
    let hops = 0;
    while ([301, 302, 303, 307, 308].includes(res.status) && res.location) {
      const next = new URL(res.location, res.url);
      if (next.origin !== this.origin) break;
      if (++hops > 10) throw new Error(`too many redirects from ${url}`);
      const keep = res.status === 307 || res.status === 308;
      res = await this.fetch(next.toString(), keep ? opts : {});
    }
    return res;
  }

  /** Submit a form parsed from `page` with extra/overriding fields; follows same-origin redirects. */
  async submit(page, fields = {}, { formIndex = 0, raw: rawFields } = {}) {
    const forms = parseForms(page.text);
    if (!forms[formIndex]) throw new Error(`no form #${formIndex} on page (status ${page.status}):\n${page.text.slice(0, 500)}`);
    const f = forms[formIndex];
    const all = rawFields ?? { ...f.fields, ...fields };
    for (const [k, v] of Object.entries(all)) if (v === undefined) delete all[k];
    const action = new URL(f.action || page.url, page.url).toString();
    if (f.method === 'post') return this.go(action, { method: 'POST', form: all });
    const u = new URL(action);
    for (const [k, v] of Object.entries(all)) u.searchParams.set(k, v);
    return this.go(u.toString());
  }

  /**
   * Open an authorize URL, expect the login form, log in. Returns the final
   * response: normally the 302 to the client's redirect_uri.
   */
  async login(authorizeUrl, username, password = DEFAULT_PASSWORD) {
    const page = await this.go(authorizeUrl);
    if (page.status !== 200) {
      throw new Error(`expected the login page (200) from ${authorizeUrl}, got ${page.status} ` +
        `location=${page.location} body=${page.text.slice(0, 300)}`);
    }
    return this.submit(page, { username, password });
  }
}

// ---------------------------------------------------------------------------
// OAuth helpers

export function b64url(buf) { return Buffer.from(buf).toString('base64url'); }
export function randomString(n = 16) { return crypto.randomBytes(n).toString('base64url'); }

export function pkce() {
  const verifier = b64url(crypto.randomBytes(32));
  const challenge = b64url(crypto.createHash('sha256').update(verifier).digest());
  return { verifier, challenge };
}

export function authorizeUrl(origin, params) {
  const u = new URL('/oauth2/authorize', origin);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.searchParams.set(k, v);
  return u.toString();
}

/**
 * Run the code flow up to the code: returns {browser, code, state, nonce, verifier, redirectUri, callback (URL), response}.
 * opts: clientId, redirectUri, scope, username, password, extra (authorize params), browser, pkce (false to omit)
 */
export async function authorize(origin, opts = {}) {
  const clientId = opts.clientId ?? 'demo';
  const redirectUri = opts.redirectUri ?? (clientId === 'backend' ? BACKEND_REDIRECT : DEMO_REDIRECT);
  const { verifier, challenge } = pkce();
  const state = randomString();
  const nonce = randomString();
  const params = {
    response_type: 'code',
    client_id: clientId,
    redirect_uri: redirectUri,
    scope: opts.scope ?? 'openid offline_access',
    state,
    nonce,
    ...(opts.pkce === false ? {} : { code_challenge: challenge, code_challenge_method: 'S256' }),
    ...(opts.extra ?? {}),
  };
  const browser = opts.browser ?? new Browser(origin);
  const url = authorizeUrl(origin, params);
  let response;
  if (opts.expectForm === false) {
    response = await browser.go(url);
  } else {
    response = await browser.login(url, opts.username ?? 'alice', opts.password ?? DEFAULT_PASSWORD);
  }
  if (response.status !== 302 || !response.location) {
    throw new Error(`authorize did not redirect to the client: status ${response.status} location=${response.location} ` +
      `body=${response.text.slice(0, 400)}`);
  }
  const callback = new URL(response.location);
  const code = callback.searchParams.get('code');
  if (!code) throw new Error(`no code in redirect ${response.location}`);
  return { browser, code, state, nonce, verifier, redirectUri, callback, response, clientId };
}

export async function tokenRequest(origin, form, opts = {}) {
  return req(new URL('/oauth2/token', origin), { method: 'POST', form, ...opts });
}

export function clientAuthFor(clientId, secret) {
  if (clientId === 'backend') return { basic: ['backend', secret ?? BACKEND_SECRET] };
  return {};
}

/** Exchange a code; returns the raw response. */
export async function redeemCode(origin, a, { clientSecret, extra = {}, auth } = {}) {
  const form = {
    grant_type: 'authorization_code',
    code: a.code,
    redirect_uri: a.redirectUri,
    code_verifier: a.verifier,
    ...(a.clientId === 'backend' ? {} : { client_id: a.clientId }),
    ...extra,
  };
  return tokenRequest(origin, form, auth ?? clientAuthFor(a.clientId, clientSecret));
}

/** Log in and get tokens. Returns {...authorize result, tokens, tokenResponse}. */
export async function login(origin, opts = {}) {
  const a = await authorize(origin, opts);
  const r = await redeemCode(origin, a);
  if (r.status !== 200) throw new Error(`code redemption failed: ${r.status} ${r.text}`);
  return { ...a, tokens: r.json(), tokenResponse: r };
}

export async function refresh(origin, refreshToken, { clientId = 'demo', auth, extra = {} } = {}) {
  const form = { grant_type: 'refresh_token', refresh_token: refreshToken, ...extra };
  if (clientId !== 'backend' && !auth) form.client_id = clientId;
  return tokenRequest(origin, form, auth ?? clientAuthFor(clientId));
}

export async function revoke(origin, token, opts = {}) {
  return req(new URL('/oauth2/revoke', origin), { method: 'POST', form: { token, ...(opts.extra ?? {}) }, ...opts.req });
}

// ---------------------------------------------------------------------------
// resolver

/** Call the resolver. Returns {status, headers, ag: {x-authgear-*: value}, res}. */
export async function resolve(origin, { bearer, cookie, method = 'GET', query = '', headers = {} } = {}) {
  const h = { ...headers };
  if (bearer) h.authorization = `Bearer ${bearer}`;
  if (cookie) h.cookie = cookie;
  const res = await req(new URL(`/_resolver/resolve${query}`, origin), { method, headers: h });
  const ag = {};
  for (const [k, v] of res.headers) if (k.toLowerCase().startsWith('x-authgear-')) ag[k.toLowerCase()] = v;
  return { status: res.status, headers: res.headers, ag, res, setCookies: res.setCookies };
}

export async function sessionValid(origin, cred) {
  const r = await resolve(origin, cred);
  return r.ag['x-authgear-session-valid'];
}

// ---------------------------------------------------------------------------
// JWT

export function decodeJwt(token) {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error(`not a JWS compact token: ${token.slice(0, 40)}...`);
  const [h, p, s] = parts;
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
    signingInput: `${h}.${p}`,
    signature: Buffer.from(s, 'base64url'),
    parts,
  };
}

export function verifyJwt(token, jwks) {
  const { header, signingInput, signature } = decodeJwt(token);
  const jwk = jwks.keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new Error(`kid ${header.kid} not in JWKS`);
  const key = crypto.createPublicKey({ key: jwk, format: 'jwk' });
  const data = Buffer.from(signingInput);
  switch (header.alg) {
    case 'RS256': return crypto.verify('sha256', data, key, signature);
    case 'ES256': return crypto.verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature);
    case 'EdDSA': return crypto.verify(null, data, key, signature);
    default: throw new Error(`unexpected alg ${header.alg}`);
  }
}

/** Sign a JWT with an arbitrary private key (for forgeries). */
export function signJwt(header, payload, privateKey) {
  const h = b64url(JSON.stringify(header));
  const p = b64url(JSON.stringify(payload));
  const input = Buffer.from(`${h}.${p}`);
  let sig;
  if (header.alg === 'RS256') sig = crypto.sign('sha256', input, privateKey);
  else if (header.alg === 'ES256') sig = crypto.sign('sha256', input, { key: privateKey, dsaEncoding: 'ieee-p1363' });
  else if (header.alg === 'EdDSA') sig = crypto.sign(null, input, privateKey);
  else if (header.alg === 'none') return `${h}.${p}.`;
  else throw new Error(`alg ${header.alg}`);
  return `${h}.${p}.${b64url(sig)}`;
}

export async function getJson(url) {
  const r = await req(url);
  if (r.status !== 200) throw new Error(`GET ${url}: ${r.status} ${r.text.slice(0, 200)}`);
  return r.json();
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function nowSec() { return Math.floor(Date.now() / 1000); }

/** Assert helpers shared by files. */
export function authgearHeaders(res) {
  const ag = {};
  for (const [k, v] of res.headers) if (k.toLowerCase().startsWith('x-authgear-')) ag[k.toLowerCase()] = v;
  return ag;
}

// ---------------------------------------------------------------------------
// Helpers of the attack, race, crash and store-failure files (20-23).

export const PYTHON_BIN = process.env.PYTHON_BIN || 'python3';

/**
 * The server's signing key, read from DATA_DIR/latchkey.secrets.yaml (the first key of
 * `oauth.keys` signs). Returns {jwk, kid, alg, privateKey, publicKey} (node:crypto KeyObjects),
 * so a test can sign tokens the server would accept, with one claim wrong.
 */
export async function signingKey(dataDir) {
  const text = await readFile(path.join(dataDir, 'latchkey.secrets.yaml'), 'utf8');
  const m = text.match(/^\s*-\s*(\{.*"kty".*\})\s*$/m);
  if (!m) throw new Error(`harness: no one-line private JWK in ${dataDir}/latchkey.secrets.yaml`);
  const jwk = JSON.parse(m[1]);
  const privateKey = crypto.createPrivateKey({ key: jwk, format: 'jwk' });
  const alg = jwk.alg ?? { RSA: 'RS256', EC: 'ES256', OKP: 'EdDSA' }[jwk.kty];
  return { jwk, kid: jwk.kid, alg, privateKey, publicKey: crypto.createPublicKey(privateKey) };
}

/** Runs a python3 script to completion: resolves {code, signal, stdout, stderr}. */
export function runPython(script, args = [], { timeoutMs = 30000, stdin = '', python = PYTHON_BIN } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(python, ['-c', script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(p);
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`python timed out after ${timeoutMs} ms: ${stderr}`)); }, timeoutMs);
    p.on('error', (e) => { clearTimeout(timer); live.delete(p); reject(new Error(`${python}: ${e.message} (python3 is needed)`)); });
    p.on('close', (code, signal) => { clearTimeout(timer); live.delete(p); resolve({ code, signal, stdout, stderr }); });
    p.stdin.on('error', () => {});
    p.stdin.end(stdin);
  });
}

/**
 * `PRAGMA integrity_check` of a SQLite file through python3's sqlite3 module (run it
 * with the server stopped). Resolves the result rows: ['ok'] for a sound file.
 */
export async function sqliteIntegrityCheck(dbPath) {
  const r = await runPython(
    'import json, sqlite3, sys\n'
    + 'c = sqlite3.connect(sys.argv[1], timeout=10)\n'
    + 'print(json.dumps([row[0] for row in c.execute("PRAGMA integrity_check")]))\n'
    + 'c.close()\n',
    [dbPath],
  );
  if (r.code !== 0) throw new Error(`integrity_check of ${dbPath} failed to run: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/**
 * One read-only query against a SQLite file (safe beside a running server: WAL readers
 * do not block it). Resolves the rows as arrays.
 */
export async function sqliteQuery(dbPath, sql, params = []) {
  const r = await runPython(
    'import json, sqlite3, sys\n'
    + 'c = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True, timeout=10)\n'
    + 'print(json.dumps([list(row) for row in c.execute(sys.argv[2], json.loads(sys.argv[3]))]))\n'
    + 'c.close()\n',
    [dbPath, sql, JSON.stringify(params)],
  );
  if (r.code !== 0) throw new Error(`query on ${dbPath} failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
