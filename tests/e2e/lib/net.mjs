// Loopback ports for the suite's servers: a free port, and waiting for one to listen.
// Imports nothing from the harness, so the harness and its helpers can all use it.
//
// Why ports are claimed rather than asked of the kernel: a port from `listen(0)` is
// free only until it is closed, and then it is back in the kernel's ephemeral range,
// where any process's next `listen(0)` or outgoing connection may take it before our
// server binds it — and wrangler, workerd and cargo-lambda each open several such
// ports while they start. A test that then reaches another test's server fails in
// ways that name the wrong cause. So the suite takes ports from a band below the
// ephemeral range, which the kernel never hands out on its own, and claims each one
// with a lock file that the other test processes (node --test runs one per file)
// respect. A claim lasts the process's life, since a server restarts on its port.
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { mkdirSync, openSync, writeSync, closeSync, readFileSync, unlinkSync } from 'node:fs';

// Below Linux's default ephemeral range (32768-60999) and below the benchmark's
// ports (scripts/bench, 29700 onwards).
const FIRST_PORT = 20000;
const LAST_PORT = 29599;
const LOCK_DIR = path.join(os.tmpdir(), 'latchkey-e2e-ports');
const lockFile = (port) => path.join(LOCK_DIR, String(port));
const claimed = new Set();

process.on('exit', () => {
  for (const port of claimed) {
    try { unlinkSync(lockFile(port)); } catch { /* already gone */ }
  }
});

function alive(pid) {
  try { process.kill(pid, 0); return true; } catch (e) { return e.code === 'EPERM'; }
}

/** Takes the lock file for `port`, or says no; a lock whose process has died is taken over. */
function claim(port) {
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      const fd = openSync(lockFile(port), 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      claimed.add(port);
      return true;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      let owner = NaN;
      try { owner = Number(readFileSync(lockFile(port), 'utf8')); } catch { /* released meanwhile */ }
      if (Number.isInteger(owner) && owner > 0 && alive(owner)) return false;
      try { unlinkSync(lockFile(port)); } catch { /* another process took it over first */ }
    }
  }
  return false;
}

function bindable(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.unref();
    s.on('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** A port on 127.0.0.1 that this process has claimed and that was free a moment ago. */
export async function freePort() {
  mkdirSync(LOCK_DIR, { recursive: true });
  const span = LAST_PORT - FIRST_PORT + 1;
  let port = FIRST_PORT + crypto.randomInt(span);
  for (let tried = 0; tried < span; tried += 1, port = port === LAST_PORT ? FIRST_PORT : port + 1) {
    if (claimed.has(port) || !claim(port)) continue;
    if (await bindable(port)) return port;
    // Held by something outside the suite: leave it to that.
    claimed.delete(port);
    try { unlinkSync(lockFile(port)); } catch { /* gone */ }
  }
  throw new Error(`no free port between ${FIRST_PORT} and ${LAST_PORT}`);
}

/**
 * Waits until `port` accepts connections, or fails naming `name` with what
 * `diagnostics()` returns (the process's log) if `proc` exits or `ms` pass first.
 * `proc` and `diagnostics` are optional.
 */
export async function waitForPort(name, port, ms, proc, diagnostics) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (proc && proc.exitCode !== null) break;
    const ok = await new Promise((r) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.on('connect', () => { s.destroy(); r(true); });
      s.on('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} did not start listening on ${port} (exit ${proc?.exitCode})\n${diagnostics ? await diagnostics() : ''}`);
}
