// Shared pieces of the reverse-proxy tests (14-nginx, 31-caddy, 32-traefik): the echo
// application behind the proxy, and waiting for the proxy to listen.
import http from 'node:http';

export { waitForPort } from './net.mjs';

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
