// The Lambda target of the end-to-end suite (LATCHKEY_E2E_TARGET=lambda).
//
// Each test server is the six Lambda functions of functions/lambda under
// `cargo lambda watch` (the local Lambda emulator), with moto as DynamoDB and Secrets
// Manager, behind a router that maps the public paths to the functions exactly as
// infra/aws/routes.json tells the SAM template's HTTP API to (unrouted paths go to
// the discovery function, like the API's $default route). Configuration reaches the
// functions the way it does in AWS: latchkey.yaml through LATCHKEY_CONFIG_FILE, the
// secrets document through a Secrets Manager secret (a new version on every start, so
// a test that rewrites its keys and restarts sees them, as a cold start would), and
// the table through LATCHKEY_TABLE. Users are created with the operator CLI,
// latchkey-aws.
//
// Nothing here skips: a missing tool fails the calling hook with the reason.
import { spawn } from 'node:child_process';
import { readFile, writeFile, access, constants } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import http from 'node:http';
import path from 'node:path';
import crypto from 'node:crypto';
import { freePort, waitForPort } from './net.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(here, '..', '..', '..');
const VENV = process.env.LATCHKEY_VENV || path.join(process.env.HOME || '/root', '.cache', 'latchkey-venv');
const PYTHON = path.join(VENV, 'bin', 'python');
const CARGO_LAMBDA = path.join(VENV, 'bin', 'cargo-lambda');
export const ROUTES = JSON.parse(await readFile(path.join(REPO, 'infra', 'aws', 'routes.json'), 'utf8'));
const PATH_TO_FUNCTION = new Map(
  Object.entries(ROUTES.functions).flatMap(([fn, f]) => f.paths.map((p) => [p, fn])),
);
const DEFAULT_FUNCTION = PATH_TO_FUNCTION.get('$default');
// API Gateway's greedy routes (`/prefix/{proxy+}`): every path below the prefix.
const GREEDY_ROUTES = [...PATH_TO_FUNCTION].filter(([p]) => p.endsWith('/{proxy+}'))
  .map(([p, fn]) => [p.slice(0, -'{proxy+}'.length), fn]);
/** The function API Gateway would invoke for `pathname`. */
function functionFor(pathname) {
  const greedy = GREEDY_ROUTES.find(([prefix]) => pathname.startsWith(prefix) && pathname.length > prefix.length);
  return PATH_TO_FUNCTION.get(pathname) ?? greedy?.[1] ?? DEFAULT_FUNCTION;
}

const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try { process.kill(-c.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});

async function mustExist(file, hint) {
  try { await access(file, constants.X_OK); } catch { throw new Error(`${file} not found: ${hint}`); }
}

/** Spawns a detached process group; returns {proc, log(), stop()}. */
function spawnGroup(cmd, args, opts) {
  const proc = spawn(cmd, args, { ...opts, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(proc);
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const exited = new Promise((resolve) => proc.on('close', (code, signal) => { children.delete(proc); resolve({ code, signal }); }));
  return {
    proc,
    log: () => log,
    exited,
    async stop(graceMs = 3000) {
      if (proc.exitCode !== null || proc.signalCode !== null) return exited;
      try { process.kill(-proc.pid, 'SIGTERM'); } catch { /* gone */ }
      const t = setTimeout(() => { try { process.kill(-proc.pid, 'SIGKILL'); } catch { /* gone */ } }, graceMs);
      const r = await exited;
      clearTimeout(t);
      return r;
    },
  };
}

// ---------------------------------------------------------------------------
// moto (one per test process)

let motoPromise;
export function moto() {
  motoPromise ??= (async () => {
    await mustExist(PYTHON, 'run scripts/test once (it creates the venv with moto)');
    const port = await freePort();
    // moto lives as long as this test process: it exits when its stdin closes, and it
    // holds no reference that would keep this process's event loop alive.
    const proc = spawn(PYTHON, [path.join(REPO, 'infra', 'aws', 'local', 'moto_server.py'), '-p', String(port), '--exit-with-stdin'],
      { stdio: ['pipe', 'ignore', 'ignore'] });
    proc.unref();
    proc.stdin.unref();
    await waitForPort('moto', port, 30000);
    return { port, endpoint: `http://127.0.0.1:${port}` };
  })();
  return motoPromise;
}

export async function awsEnv() {
  const m = await moto();
  return {
    AWS_ACCESS_KEY_ID: 'test',
    AWS_SECRET_ACCESS_KEY: 'test',
    AWS_REGION: 'us-east-1',
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_ENDPOINT_URL: m.endpoint,
  };
}

function run(cmd, args, { env, stdin, timeoutMs = 60000 } = {}) {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => { stdout += d; });
    p.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`${cmd} ${args.join(' ')} timed out`)); }, timeoutMs);
    p.on('error', (e) => { clearTimeout(t); reject(e); });
    p.on('close', (code, signal) => { clearTimeout(t); resolve({ code, signal, stdout, stderr }); });
    p.stdin.on('error', () => {});
    p.stdin.end(stdin ?? '');
  });
}

/** Runs latchkey-aws (the operator CLI) against moto. */
export async function latchkeyAws(bin, args, opts = {}) {
  await mustExist(bin, 'build it with `cargo build -p latchkey-lambda`');
  return run(bin, args, { ...opts, env: { ...(await awsEnv()), ...opts.env } });
}

const SECRET_SCRIPT = `
import boto3, sys
c = boto3.client("secretsmanager")
name, file = sys.argv[1], sys.argv[2]
text = open(file).read()
try:
    print(c.create_secret(Name=name, SecretString=text)["ARN"])
except c.exceptions.ResourceExistsException:
    print(c.put_secret_value(SecretId=name, SecretString=text) and c.describe_secret(SecretId=name)["ARN"])
`;

/** Stores the secrets document as (a new version of) the secret `name`; resolves its ARN. */
export async function putSecret(name, file) {
  const r = await run(PYTHON, ['-c', SECRET_SCRIPT, name, file], { env: await awsEnv() });
  if (r.code !== 0) throw new Error(`storing the secret failed: ${r.stderr}`);
  return r.stdout.trim();
}

// ---------------------------------------------------------------------------
// the functions and the router

/**
 * Starts the functions for one test server: cargo lambda watch on a port of its own,
 * the router on `port`. Resolves {stop(), logs()}.
 */
export async function startFunctions({ port, dataDir, table, secretName, targetDir, extraEnv = {} }) {
  await mustExist(CARGO_LAMBDA, 'run scripts/test once (it installs cargo-lambda into the venv)');
  const arn = await putSecret(secretName, path.join(dataDir, 'latchkey.secrets.yaml'));
  const env = {
    ...(await awsEnv()),
    LATCHKEY_TABLE: table,
    LATCHKEY_SECRETS_ARN: arn,
    LATCHKEY_CONFIG_FILE: path.join(dataDir, 'latchkey.yaml'),
    LATCHKEY_LOG: 'info',
    ...extraEnv,
  };
  const envFile = path.join(dataDir, 'lambda.env');
  await writeFile(envFile, Object.entries(env).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');
  const watchPort = await freePort();
  const watch = spawnGroup(CARGO_LAMBDA, ['lambda', 'watch', ...(process.env.LATCHKEY_LAMBDA_RELEASE ? ['--release'] : []), '--ignore-changes', '--disable-cors', '--concurrency', '4', '-A', '127.0.0.1', '-P', String(watchPort), '--env-file', envFile], {
    cwd: path.join(REPO, 'functions', 'lambda'),
    env: { ...process.env, CARGO_TARGET_DIR: targetDir, CARGO_TERM_COLOR: 'never' },
  });
  await waitForPort('cargo lambda watch', watchPort, 60000, watch.proc, watch.log);
  const router = await startRouter(port, watchPort);
  // Warm every function once (each first invocation starts `cargo run` and a cold
  // start), so no test's timing includes it.
  await Promise.all(Object.values(ROUTES.functions)
    .map((f) => warm(port, f.paths.find((p) => p.startsWith('/')).replace('{proxy+}', 'warm'))));
  return {
    logs: watch.log,
    async stop() {
      await new Promise((r) => { router.closeAllConnections?.(); router.close(() => r()); });
      await watch.stop();
    },
  };
}

function warm(port, p) {
  return new Promise((resolve, reject) => {
    const rq = http.request({ host: '127.0.0.1', port, path: p, method: 'OPTIONS', timeout: 60000 }, (rs) => {
      rs.resume();
      rs.on('end', resolve);
    });
    rq.on('timeout', () => rq.destroy(new Error(`warming ${p} timed out`)));
    rq.on('error', reject);
    rq.end();
  });
}

/** The API Gateway stand-in: public path -> /lambda-url/<function><path> on the emulator. */
export function startRouter(port, watchPort) {
  return new Promise((resolve, reject) => {
    const server = http.createServer((rq, rs) => {
      const url = new URL(rq.url, 'http://router');
      const fn = functionFor(url.pathname);
      const headers = { ...rq.headers };
      // X-Forwarded-For passes as sent, as from a CDN in front of the API. (API Gateway
      // itself reports the peer as the event's sourceIp, which becomes the client
      // address when http.trust_proxy is off.)
      headers['x-forwarded-proto'] = 'http';
      const up = http.request({
        host: '127.0.0.1', port: watchPort, method: rq.method, path: `/lambda-url/${fn}${url.pathname}${url.search}`, headers,
      }, (ur) => {
        rs.writeHead(ur.statusCode, ur.rawHeaders);
        ur.pipe(rs);
      });
      up.on('error', (e) => {
        if (!rs.headersSent) { rs.writeHead(502, { 'content-type': 'application/json' }); }
        rs.end(JSON.stringify({ message: `router: ${e.message}` }));
      });
      rq.pipe(up);
    });
    server.keepAliveTimeout = 1000;
    server.on('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

/** A table name unique to this test server. */
export function newTableName() {
  return `latchkey-e2e-${crypto.randomBytes(6).toString('hex')}`;
}
