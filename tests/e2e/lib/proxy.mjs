// Shared pieces of the reverse-proxy tests (14-nginx, 31-caddy, 32-traefik): the echo
// application behind the proxy, and waiting for the proxy to listen.
import http from 'node:http';
import net from 'node:net';
import { sleep } from '../harness.mjs';

/**
 * An application that answers every request with what it received: method, URL, body
 * and the identity headers (`x-authgear-*`, and the underscore spelling a proxy could
 * smuggle). Resolves the listening http.Server (port: server.address().port).
 */
export function startEchoUpstream() {
  return new Promise((resolve) => {
    const server = http.createServer((rq, rs) => {
      const chunks = [];
      rq.on('data', (c) => chunks.push(c));
      rq.on('end', () => {
        const identity = {};
        for (const [k, v] of Object.entries(rq.headers)) {
          if (k.startsWith('x-authgear-') || k.startsWith('x_authgear_')) identity[k] = v;
        }
        rs.setHeader('content-type', 'application/json');
        rs.end(JSON.stringify({ method: rq.method, url: rq.url, identity, body: Buffer.concat(chunks).toString() }));
      });
    });
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

/**
 * Waits until `port` accepts connections, or fails naming `name` with what
 * `diagnostics()` returns (the proxy's log) if it exits or `ms` pass first.
 */
export async function waitForPort(name, port, ms, proc, diagnostics) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (proc.exitCode !== null) break;
    const ok = await new Promise((r) => {
      const s = net.connect({ host: '127.0.0.1', port });
      s.on('connect', () => { s.destroy(); r(true); });
      s.on('error', () => r(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`${name} did not start listening on ${port} (exit ${proc.exitCode})\n${await diagnostics()}`);
}
