// Lambda benchmark: binary size per function, cold init, and resolve latency through
// the emulator. Prints one markdown table to stdout (progress to stderr). Run it with
// scripts/bench-lambda, which builds the release functions first.
//
// * Size: the stripped release binaries (the workspace's release profile strips), as
//   built for this machine (x86_64; the SAM build targets arm64 with the same code).
// * Cold init: a stand-in for the Lambda Runtime API written here serves one API
//   Gateway v2 event (a cookie resolve of a real session) and times process start ->
//   the function posting its response. Everything between is the function's own work:
//   reading the config, fetching the secret from Secrets Manager (moto), building the
//   DynamoDB client, and answering the first request (two reads). No emulator is in
//   the path, so its overhead is excluded by construction.
// * Latency: sequential cookie resolves through the router and `cargo lambda watch`
//   with moto, as the e2e suite's Lambda target runs them; this includes the
//   emulator's and moto's costs (moto serves one request at a time).
// * CPU per resolve, twice: the shipped binary serving BENCH_RESOLVES cookie resolves
//   from the Runtime API stand-in (no emulator; the figure to quote), and the functions
//   under the emulator (user + system of their processes over the latency run; the dev
//   profile unless BENCH_EMULATOR_RELEASE=1). Both exclude moto's and the emulator's
//   own CPU: what Lambda bills is the function's.
process.env.LATCHKEY_E2E_TARGET = 'lambda';
// The emulator runs the dev-profile functions (their dependencies are optimised in
// that profile too; see the workspace Cargo.toml) unless BENCH_EMULATOR_RELEASE=1.
if (process.env.BENCH_EMULATOR_RELEASE === '1') process.env.LATCHKEY_LAMBDA_RELEASE = '1';
const { spawn } = await import('node:child_process');
const { descendantCpuSeconds, cpuSecondsOf } = await import('./proc-cpu.mjs');
const { stat, readFile } = await import('node:fs/promises');
const http = await import('node:http');
const path = await import('node:path');
const h = await import('../tests/e2e/harness.mjs');
const lambda = await import('../tests/e2e/lib/lambda.mjs');

const TARGET_DIR = process.env.CARGO_TARGET_DIR;
// The size-optimised build the functions ship as (the workspace's `lambda` profile).
const RELEASE = path.join(TARGET_DIR, 'lambda');
const COLD_RUNS = Number(process.env.BENCH_COLD_RUNS || 15);
const RESOLVES = Number(process.env.BENCH_RESOLVES || 500);
const log = (...a) => console.error('[bench-lambda]', ...a);

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
const median = (xs) => pct(xs, 0.5);

// A server (functions under the emulator) with one logged-in user.
const srv = await h.startServer();
const l = await h.login(srv.origin);
const cookie = `session=${l.browser.cookie('session')}`;
log('server up at', srv.origin);

// --- sizes
const sizes = {};
for (const fn of Object.keys(lambda.ROUTES.functions)) {
  sizes[fn] = await stat(path.join(RELEASE, fn)).then((st) => st.size, () => null);
}

// --- cold init via a Runtime API stand-in
// The environment the harness gave the functions (table, secret, config, moto).
const envText = await readFile(path.join(srv.dataDir, 'lambda.env'), 'utf8');
const fnEnv = Object.fromEntries(envText.trim().split('\n').map((line) => { const i = line.indexOf('='); return [line.slice(0, i), line.slice(i + 1)]; }));

function event(p) {
  return {
    version: '2.0', routeKey: `ANY ${p}`, rawPath: p, rawQueryString: '',
    cookies: [cookie], headers: { host: new URL(srv.origin).host, 'user-agent': 'bench' },
    requestContext: {
      accountId: '123456789012', apiId: 'bench', domainName: new URL(srv.origin).host, domainPrefix: 'bench',
      http: { method: 'GET', path: p, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'bench' },
      requestId: 'bench', routeKey: `ANY ${p}`, stage: '$default', time: '01/Jan/2026:00:00:00 +0000', timeEpoch: Date.now(),
    },
    isBase64Encoded: false,
  };
}

// A stand-in for the Lambda Runtime API: serves `count` events for path `p`, one after
// another, to one process of the shipped binary `fn`, and calls `onResponse(url, body,
// index)` as each answer arrives (after it, the next poll waits until the process is
// stopped). `measure(child, started, done)` makes that callback; `started` is the
// hrtime just before the spawn, and `runEvents` returns what is passed to `done`, or
// fails after `timeoutMs`.
async function runEvents(fn, p, count, timeoutMs, measure) {
  let served = 0, answered = 0, settle;
  const outcome = new Promise((r) => { settle = r; });
  let onResponse = () => {};
  const api = http.createServer((rq, rs) => {
    if (rq.method === 'GET' && rq.url.endsWith('/invocation/next')) {
      if (served >= count) return;
      served += 1;
      rs.writeHead(200, {
        'content-type': 'application/json', 'lambda-runtime-aws-request-id': `req-${served}`,
        'lambda-runtime-deadline-ms': String(Date.now() + 10000),
        'lambda-runtime-invoked-function-arn': `arn:aws:lambda:us-east-1:123456789012:function:${fn}`,
      });
      rs.end(JSON.stringify(event(p)));
      return;
    }
    let body = '';
    rq.on('data', (d) => { body += d; });
    rq.on('end', async () => {
      answered += 1;
      try { await onResponse(rq.url, body, answered); } catch (e) { settle({ error: e.message }); }
      rs.writeHead(202); rs.end('{}');
    });
  });
  await new Promise((r) => api.listen(0, '127.0.0.1', r));
  const env = {
    ...process.env, ...fnEnv,
    AWS_LAMBDA_RUNTIME_API: `127.0.0.1:${api.address().port}`, AWS_LAMBDA_FUNCTION_NAME: fn,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '256', AWS_LAMBDA_FUNCTION_VERSION: '$LATEST', LATCHKEY_LOG: 'warn',
  };
  const started = process.hrtime.bigint();
  const child = spawn(path.join(RELEASE, fn), [], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  onResponse = measure(child, started, (value) => settle({ value }));
  const timeout = setTimeout(() => settle({ error: `no answer in ${timeoutMs / 1000} s: ${stderr}` }), timeoutMs);
  const r = await outcome;
  clearTimeout(timeout);
  child.kill('SIGKILL');
  api.closeAllConnections(); api.close();
  if (r.error) throw new Error(r.error);
  return r.value;
}

async function coldStart(fn, p) {
  return runEvents(fn, p, 1, 10000, (_child, started, done) => (url, body) => {
    const t = process.hrtime.bigint();
    if (!url.endsWith('/response')) throw new Error(`the function reported ${url}: ${body}`);
    done({ ms: Number(t - started) / 1e6, body });
  });
}

// Warm CPU per resolve: the stand-in serves `n + 1` events to one process of the
// shipped (`lambda` profile) binary; the process's own CPU time (user + system,
// /proc/PID/stat) from its first answer to its last, over n. That is the function's
// work per request (what Lambda bills), with no emulator in the path.
async function warmCpuPerEvent(fn, p, n) {
  let afterFirst = 0;
  const seconds = await runEvents(fn, p, n + 1, 120000, (child, _started, done) => async (url, body, index) => {
    if (!url.endsWith('/response') || !body.includes('"x-authgear-session-valid":"true"')) {
      throw new Error(`event ${index}: ${url} ${body.slice(0, 300)}`);
    }
    if (index === 1) afterFirst = await cpuSecondsOf(child.pid);
    if (index === n + 1) done((await cpuSecondsOf(child.pid)) - afterFirst);
  });
  return (seconds * 1000) / n;
}

const cold = {};
for (const [fn, p] of [['latchkey-resolve', '/_resolver/resolve'], ['latchkey-discovery', '/oauth2/jwks']]) {
  const xs = [];
  for (let i = 0; i < COLD_RUNS; i++) {
    const r = await coldStart(fn, p);
    if (fn === 'latchkey-resolve' && !r.body.includes('"x-authgear-session-valid":"true"')) {
      throw new Error(`the cold resolve did not answer valid: ${r.body.slice(0, 300)}`);
    }
    xs.push(r.ms);
  }
  cold[fn] = xs;
  log(fn, 'cold init median', median(xs).toFixed(1), 'ms');
}

const warmCpuMs = await warmCpuPerEvent('latchkey-resolve', '/_resolver/resolve', RESOLVES);
log('latchkey-resolve warm CPU per resolve', warmCpuMs.toFixed(3), 'ms');

// --- resolve latency through the emulator
const lat = [];
for (let i = 0; i < 20; i++) await h.resolve(srv.origin, { cookie }); // warm the instance
// The functions run as children of `cargo lambda watch`; their command names start
// with "latchkey-" (the kernel keeps 15 characters).
const isFunction = (comm) => comm.startsWith('latchkey-');
const cpu0 = await descendantCpuSeconds(isFunction);
for (let i = 0; i < RESOLVES; i++) {
  const t = process.hrtime.bigint();
  const r = await h.resolve(srv.origin, { cookie });
  lat.push(Number(process.hrtime.bigint() - t) / 1e6);
  if (r.ag['x-authgear-session-valid'] !== 'true') throw new Error('resolve stopped answering valid');
}
const cpuPerResolveMs = ((await descendantCpuSeconds(isFunction)) - cpu0) * 1000 / RESOLVES;
await srv.cleanup();

const mb = (b) => (b / 1e6).toFixed(2);
console.log('| Function | Stripped size (MB) |');
console.log('|---|---|');
for (const [fn, b] of Object.entries(sizes)) console.log(`| ${fn} | ${b === null ? 'not built' : mb(b)} |`);
console.log('');
console.log(`| Measure (n) | median | p90 | min |`);
console.log('|---|---|---|---|');
for (const [fn, xs] of Object.entries(cold)) {
  console.log(`| cold init, ${fn}, process start -> first answer (${xs.length}) | ${median(xs).toFixed(1)} ms | ${pct(xs, 0.9).toFixed(1)} ms | ${Math.min(...xs).toFixed(1)} ms |`);
}
console.log(`| cookie resolve via emulator + moto, p50 / p99 (${lat.length}) | ${median(lat).toFixed(2)} ms | p99 ${pct(lat, 0.99).toFixed(2)} ms | ${Math.min(...lat).toFixed(2)} ms |`);
console.log(`| CPU per warm cookie resolve, shipped binary, stand-in Runtime API (${RESOLVES}) | ${warmCpuMs.toFixed(3)} ms | | |`);
console.log(`| CPU per cookie resolve of the functions under the emulator (${process.env.LATCHKEY_LAMBDA_RELEASE ? 'release' : 'dev'} profile, ${lat.length}) | ${cpuPerResolveMs.toFixed(3)} ms | | |`);
process.exit(0);
