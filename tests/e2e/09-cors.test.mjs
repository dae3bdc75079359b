// CORS: origins of registered redirect URIs and http.allowed_origins get
// credentialed CORS on the API endpoints; nothing else does; authorize,
// end_session and the resolver never do.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, baseConfig, login, req, BACKEND_SECRET } from './harness.mjs';

const ALLOWED = ['http://127.0.0.1:4000', 'http://localhost:4000', 'http://127.0.0.1:4001', 'https://app.example.test'];
const DENIED = ['https://evil.example', 'http://127.0.0.1:4000.evil.example', 'http://127.0.0.1:4009', 'null',
  'http://127.0.0.1:40000', 'https://127.0.0.1:4000', 'http://app.example.test'];

function corsHeaders(r) {
  const h = {};
  for (const [k, v] of r.headers) if (k.startsWith('access-control-')) h[k] = v;
  return h;
}

describe('CORS', { timeout: 90000 }, () => {
  let srv;
  let tokens;
  before(async () => {
    srv = await startServer({ config: (o) => baseConfig(o, { http: { allowed_origins: ['https://app.example.test'] } }) });
    ({ tokens } = await login(srv.origin));
  });
  after(async () => { await srv?.cleanup(); });

  const endpoints = () => [
    ['discovery', '/.well-known/openid-configuration', {}],
    ['oauth-authorization-server', '/.well-known/oauth-authorization-server', {}],
    ['jwks', '/oauth2/jwks', {}],
    ['token', '/oauth2/token', { method: 'POST', form: { grant_type: 'client_credentials' }, basic: ['backend', BACKEND_SECRET] }],
    ['token error', '/oauth2/token', { method: 'POST', form: { grant_type: 'nope' } }],
    ['revoke', '/oauth2/revoke', { method: 'POST', form: { token: 'unknown' } }],
    ['userinfo', '/oauth2/userinfo', { bearer: tokens.access_token }],
    ['userinfo 401', '/oauth2/userinfo', {}],
  ];

  it('allowed origins get ACAO echo, credentials true, Vary: Origin', async () => {
    for (const origin of ALLOWED) {
      for (const [name, path, opts] of endpoints()) {
        const r = await req(`${srv.origin}${path}`, { ...opts, origin });
        assert.ok(r.status < 500, `${name}: ${r.status}`);
        assert.equal(r.headers.get('access-control-allow-origin'), origin, `${name} from ${origin}: ACAO (status ${r.status})`);
        assert.equal(r.headers.get('access-control-allow-credentials'), 'true', `${name} from ${origin}: credentials`);
        assert.match(r.headers.get('vary') ?? '', /\borigin\b/i, `${name} from ${origin}: Vary: Origin`);
      }
    }
  });

  it('preflight OPTIONS → 204 with methods, headers, max-age; no authentication needed', async () => {
    for (const origin of ALLOWED) {
      for (const [name, path, opts] of endpoints()) {
        const r = await req(`${srv.origin}${path}`, {
          method: 'OPTIONS',
          headers: { origin, 'access-control-request-method': opts.method ?? 'GET', 'access-control-request-headers': 'authorization, content-type' },
        });
        assert.equal(r.status, 204, `${name} preflight from ${origin}: ${r.status}`);
        assert.equal(r.headers.get('access-control-allow-origin'), origin, `${name} preflight ACAO`);
        assert.equal(r.headers.get('access-control-allow-credentials'), 'true');
        assert.ok(r.headers.get('access-control-allow-methods'), `${name}: Allow-Methods`);
        const ah = (r.headers.get('access-control-allow-headers') ?? '').toLowerCase();
        assert.match(ah, /authorization/, `${name}: Allow-Headers has authorization (${ah})`);
        assert.match(ah, /content-type/, `${name}: Allow-Headers has content-type (${ah})`);
        assert.match(r.headers.get('access-control-max-age') ?? '', /^\d+$/, `${name}: Max-Age`);
        assert.equal(r.text, '', 'empty preflight body');
      }
    }
  });

  it('disallowed origins get no CORS headers', async () => {
    for (const origin of DENIED) {
      for (const [name, path, opts] of endpoints()) {
        const r = await req(`${srv.origin}${path}`, { ...opts, origin });
        assert.deepEqual(corsHeaders(r), {}, `${name} from ${origin}`);
      }
      const pre = await req(`${srv.origin}/oauth2/token`, {
        method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' },
      });
      assert.equal(pre.headers.get('access-control-allow-origin'), null, `preflight from ${origin}`);
      assert.ok(pre.status < 500);
    }
  });

  it('no Origin header → no CORS headers', async () => {
    for (const [name, path, opts] of endpoints()) {
      const r = await req(`${srv.origin}${path}`, opts);
      assert.equal(r.headers.get('access-control-allow-origin'), null, name);
    }
  });

  it('authorize, end_session and the resolver never send CORS headers', async () => {
    const paths = [
      ['GET', '/oauth2/authorize?client_id=demo&redirect_uri=http%3A%2F%2F127.0.0.1%3A4000%2Fcallback&response_type=code&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGrSstw-cM&code_challenge_method=S256'],
      ['GET', '/oauth2/authorize?client_id=nope'],
      ['GET', '/oauth2/end_session'],
      ['GET', '/_resolver/resolve'],
      ['OPTIONS', '/oauth2/authorize'],
      ['OPTIONS', '/oauth2/end_session'],
      ['OPTIONS', '/_resolver/resolve'],
    ];
    for (const origin of ALLOWED) {
      for (const [method, path] of paths) {
        const headers = { origin };
        if (method === 'OPTIONS') headers['access-control-request-method'] = 'GET';
        const r = await req(`${srv.origin}${path}`, { method, headers });
        assert.deepEqual(corsHeaders(r), {}, `${method} ${path} from ${origin}`);
        assert.ok(r.status < 500, `${method} ${path}: ${r.status}`);
      }
    }
  });
});
