// Serves the example SPA (index.html, app.js), the Authgear Web SDK's ES module
// build, a config.json telling the SPA where Latchkey is, and one API route that
// plays the app's backend: GET /api/me forwards the request's Authorization header
// to Latchkey's resolver and answers with the X-Authgear-* headers it got back.
//
//   node examples/spa/server.mjs [--port 4000] [--endpoint http://127.0.0.1:3000] [--client-id demo]
//
// The SDK file comes from tests/e2e/node_modules (npm ci there), or AUTHGEAR_WEB_SDK.
// The end-to-end test tests/e2e/41-authgear-sdk.test.mjs imports startSpaServer().

import http from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

export const DEFAULT_SDK_PATH = process.env.AUTHGEAR_WEB_SDK
  || path.join(here, '..', '..', 'tests', 'e2e', 'node_modules', '@authgear', 'web', 'dist', 'authgear-web.module.js');

const FILES = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/callback': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
};

/**
 * Start the SPA server. Resolves {origin, port, server, config, requests, close()}.
 * `config` ({endpoint, clientID}) may be changed while the server runs.
 */
export async function startSpaServer({ port = 4000, host = '127.0.0.1', endpoint = 'http://127.0.0.1:3000', clientID = 'demo', sdkPath = DEFAULT_SDK_PATH } = {}) {
  const sdk = await readFile(sdkPath).catch((e) => {
    throw new Error(`Authgear Web SDK not found at ${sdkPath} (run npm ci in tests/e2e, or set AUTHGEAR_WEB_SDK): ${e.message}`);
  });
  const handle = { config: { endpoint, clientID }, requests: [] };
  const send = (res, status, type, body, extra = {}) => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...extra });
    res.end(body);
  };
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, `http://${host}`);
    handle.requests.push({ method: req.method, path: url.pathname, authorization: req.headers.authorization ?? null });
    try {
      if (req.method !== 'GET') return send(res, 405, 'text/plain', 'method not allowed', { allow: 'GET' });
      if (url.pathname === '/favicon.ico') return send(res, 204, 'image/x-icon', '');
      if (url.pathname === '/config.json') return send(res, 200, 'application/json', JSON.stringify(handle.config));
      if (url.pathname === '/vendor/authgear-web.js') return send(res, 200, 'text/javascript; charset=utf-8', sdk);
      if (url.pathname === '/api/me') {
        const headers = req.headers.authorization ? { authorization: req.headers.authorization } : {};
        const r = await fetch(new URL('/_resolver/resolve', handle.config.endpoint), { headers, signal: AbortSignal.timeout(10000) });
        const identity = {};
        for (const [k, v] of r.headers) if (k.startsWith('x-authgear-')) identity[k] = v;
        return send(res, r.status, 'application/json', JSON.stringify(identity));
      }
      const file = FILES[url.pathname];
      if (!file) return send(res, 404, 'text/plain', 'not found');
      return send(res, 200, file[1], await readFile(path.join(here, file[0])));
    } catch (e) {
      return send(res, 502, 'text/plain', `error: ${e.message}`);
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', (e) => reject(e.code === 'EADDRINUSE'
      ? new Error(`port ${port} on ${host} is already in use (the SPA must run on the origin of its registered redirect URI)`)
      : e));
    server.listen(port, host, resolve);
  });
  handle.server = server;
  handle.port = server.address().port;
  handle.origin = `http://${host}:${handle.port}`;
  handle.close = () => new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections?.();
  });
  return handle;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const arg = (name, def) => {
    const i = process.argv.indexOf(`--${name}`);
    return i === -1 ? def : process.argv[i + 1];
  };
  const spa = await startSpaServer({
    port: Number(arg('port', '4000')),
    endpoint: arg('endpoint', 'http://127.0.0.1:3000'),
    clientID: arg('client-id', 'demo'),
  });
  console.log(`SPA on ${spa.origin} (Latchkey at ${spa.config.endpoint}, client ${spa.config.clientID})`);
}
