// Loopback ports for the suite's servers: a free port, and waiting for one to listen.
// Imports nothing from the harness, so the harness and its helpers can all use it.
import net from 'node:net';

/** A port on 127.0.0.1 that was free a moment ago. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
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
