// POST /oauth2/token: authorization_code (single use, PKCE, redirect_uri),
// client authentication, refresh_token (rotation, retry, reuse detection,
// rotation off, idle timeout, concurrency), client_credentials, and headers.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, baseConfig, demoClient, backendClient, clientConfig, authorize, redeemCode, login, refresh,
  tokenRequest, resolve, decodeJwt, verifyJwt, getJson, basicAuth, sleep, pkce,
  BACKEND_SECRET, BACKEND_REDIRECT, DEMO_REDIRECT, DEMO_REDIRECT_LOCALHOST, req,
} from './harness.mjs';

const NOROTATE_REDIRECT = 'http://127.0.0.1:4002/callback';
const SHORTIDLE_REDIRECT = 'http://127.0.0.1:4003/callback';
const OTHER_REDIRECT = 'http://127.0.0.1:4004/callback';
const SHORTLIFE_REDIRECT = 'http://127.0.0.1:4006/callback';
const NOIDLE_REDIRECT = 'http://127.0.0.1:4007/callback';
const WEBAPP_REDIRECT = 'http://127.0.0.1:4008/callback';
const WEBPUBLIC_REDIRECT = 'http://127.0.0.1:4009/callback';
const WEBAPP_SECRET = 'webapp-secret-abcdefghijklmnop';
const NOREFRESH_REDIRECT = 'http://127.0.0.1:4010/callback';
const IDLE3_REDIRECT = 'http://127.0.0.1:4011/callback';

function checkTokenHeaders(r, what = '') {
  assert.match(r.headers.get('cache-control') ?? '', /no-store/, `${what} Cache-Control: no-store (${r.status})`);
  assert.equal(r.headers.get('pragma'), 'no-cache', `${what} Pragma: no-cache (${r.status})`);
  assert.match(r.headers.get('content-type') ?? '', /application\/json/, `${what} JSON content type`);
}

function expectError(r, status, error, what = '') {
  checkTokenHeaders(r, what);
  assert.equal(r.status, status, `${what}: expected ${status} ${error}, got ${r.status} ${r.text}`);
  const j = r.json();
  assert.equal(j.error, error, `${what}: error code (body ${r.text})`);
  if (j.error_description !== undefined) assert.equal(typeof j.error_description, 'string');
}

function expectOk(r, what = '') {
  checkTokenHeaders(r, what);
  assert.equal(r.status, 200, `${what}: ${r.status} ${r.text}`);
  return r.json();
}

async function valid(origin, accessToken) {
  const r = await resolve(origin, { bearer: accessToken });
  assert.equal(r.status, 200);
  return r.ag['x-authgear-session-valid'];
}

describe('token endpoint', { timeout: 180000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({
      clientSecrets: { backend: BACKEND_SECRET, webapp: WEBAPP_SECRET },
      config: (o) => baseConfig(o, {
        clients: [
          demoClient(),
          backendClient(),
          clientConfig({ client_id: 'idle3', name: 'Idle 3 s', redirect_uris: [IDLE3_REDIRECT], refresh_token_idle_timeout_seconds: 3 }),
          clientConfig({ client_id: 'norefresh', name: 'No refresh grant', redirect_uris: [NOREFRESH_REDIRECT], grant_types: ['authorization_code'] }),
          clientConfig({ client_id: 'shortlife', name: 'Short lifetime', redirect_uris: [SHORTLIFE_REDIRECT], refresh_token_lifetime_seconds: 2 }),
          clientConfig({
            client_id: 'noidle', name: 'No idle timeout', redirect_uris: [NOIDLE_REDIRECT],
            refresh_token_idle_timeout_enabled: false, refresh_token_idle_timeout_seconds: 2,
          }),
          clientConfig({ client_id: 'webapp', name: 'Web app (secret)', x_application_type: 'traditional_webapp', redirect_uris: [WEBAPP_REDIRECT], post_logout_redirect_uris: ['http://127.0.0.1:4008/'] }),
          clientConfig({ client_id: 'webpublic', name: 'Web app (public)', x_application_type: 'traditional_webapp', redirect_uris: [WEBPUBLIC_REDIRECT], post_logout_redirect_uris: ['http://127.0.0.1:4009/'] }),
          clientConfig({ client_id: 'norotate', name: 'No rotation', redirect_uris: [NOROTATE_REDIRECT], refresh_token_rotation_enabled: false }),
          clientConfig({ client_id: 'shortidle', name: 'Short idle', redirect_uris: [SHORTIDLE_REDIRECT], refresh_token_idle_timeout_seconds: 2 }),
          clientConfig({ client_id: 'other', name: 'Other SPA', redirect_uris: [OTHER_REDIRECT] }),
        ],
      }),
    });
  });
  after(async () => { await srv?.cleanup(); });

  it('code exchange returns the documented response', async () => {
    const a = await authorize(srv.origin);
    const t = expectOk(await redeemCode(srv.origin, a));
    assert.equal(typeof t.access_token, 'string');
    assert.equal(t.token_type, 'Bearer');
    assert.equal(typeof t.expires_in, 'number');
    assert.deepEqual(t.scope.split(' ').sort(), ['offline_access', 'openid']);
    assert.match(t.refresh_token, /^[^.]+\.[A-Za-z0-9]{32}$/);
    assert.equal(typeof t.id_token, 'string');
    const jwks = await getJson(`${srv.origin}/oauth2/jwks`);
    assert.ok(verifyJwt(t.access_token, jwks));
  });

  it('no nonce in the request → no nonce claim in the ID token', async () => {
    const a = await authorize(srv.origin, { extra: { nonce: undefined } });
    const t = expectOk(await redeemCode(srv.origin, a));
    assert.equal(decodeJwt(t.id_token).payload.nonce, undefined);
  });

  it('no refresh_token without offline_access; no id_token without openid is impossible (openid required)', async () => {
    const a = await authorize(srv.origin, { scope: 'openid' });
    const t = expectOk(await redeemCode(srv.origin, a));
    assert.equal(t.refresh_token, undefined, 'no refresh token without offline_access');
    assert.ok(t.id_token);
    assert.equal(t.scope, 'openid');
  });

  it('no refresh_token when the client lacks the refresh_token grant, even with offline_access', async () => {
    const { tokens } = await login(srv.origin, { clientId: 'norefresh', redirectUri: NOREFRESH_REDIRECT });
    assert.equal(tokens.refresh_token, undefined, 'no refresh token');
    assert.ok(tokens.access_token);
    expectError(await refresh(srv.origin, 'x.y', { clientId: 'norefresh' }), 400, 'unauthorized_client', 'refresh grant not allowed');
  });

  it('a code is single use; a replay revokes the tokens of the first redemption', async () => {
    const a = await authorize(srv.origin);
    const t = expectOk(await redeemCode(srv.origin, a), 'first redemption');
    assert.equal(await valid(srv.origin, t.access_token), 'true');
    expectError(await redeemCode(srv.origin, a), 400, 'invalid_grant', 'replay');
    assert.equal(await valid(srv.origin, t.access_token), 'false', 'access token from the first redemption is dead');
    expectError(await refresh(srv.origin, t.refresh_token), 400, 'invalid_grant', 'refresh token from the first redemption');
  });

  it('redirect_uri mismatch, wrong/missing PKCE verifier, wrong client, bogus code → invalid_grant', async () => {
    const a1 = await authorize(srv.origin);
    expectError(await redeemCode(srv.origin, { ...a1, redirectUri: DEMO_REDIRECT_LOCALHOST }), 400, 'invalid_grant', 'other registered redirect_uri');
    const a1b = await authorize(srv.origin);
    const r1b = await redeemCode(srv.origin, a1b, { extra: { redirect_uri: undefined } });
    checkTokenHeaders(r1b);
    assert.equal(r1b.status, 400, `missing redirect_uri: ${r1b.text}`);
    assert.ok(['invalid_grant', 'invalid_request'].includes(r1b.json().error), `missing redirect_uri: ${r1b.text}`);
    const a2 = await authorize(srv.origin);
    expectError(await redeemCode(srv.origin, { ...a2, verifier: pkce().verifier }), 400, 'invalid_grant', 'wrong verifier');
    const a3 = await authorize(srv.origin);
    const r3 = await redeemCode(srv.origin, { ...a3, verifier: undefined });
    checkTokenHeaders(r3);
    assert.equal(r3.status, 400, `missing verifier: ${r3.text}`);
    assert.ok(['invalid_grant', 'invalid_request'].includes(r3.json().error), `missing verifier: ${r3.text}`);
    const a4 = await authorize(srv.origin);
    expectError(await redeemCode(srv.origin, { ...a4, clientId: 'other', redirectUri: DEMO_REDIRECT }), 400, 'invalid_grant', 'code of demo redeemed by other');
    expectError(await redeemCode(srv.origin, { ...a4, code: 'bogus-code' }), 400, 'invalid_grant', 'bogus code');
    // a4's code was not consumed by the failed attempts of other clients? (not specified) — only check no 5xx
  });

  it('confidential client: client_secret_basic and client_secret_post both work', async () => {
    const a1 = await authorize(srv.origin, { clientId: 'backend' });
    expectOk(await redeemCode(srv.origin, a1, { auth: { basic: ['backend', BACKEND_SECRET] } }), 'basic');
    const a2 = await authorize(srv.origin, { clientId: 'backend' });
    const t2 = expectOk(await redeemCode(srv.origin, a2, {
      auth: {}, extra: { client_id: 'backend', client_secret: BACKEND_SECRET },
    }), 'post');
    expectOk(await refresh(srv.origin, t2.refresh_token, { clientId: 'backend', auth: {}, extra: { client_id: 'backend', client_secret: BACKEND_SECRET } }), 'refresh with post');
  });

  it('confidential client: PKCE optional; refresh needs client authentication', async () => {
    const a = await authorize(srv.origin, { clientId: 'backend', pkce: false });
    const t = expectOk(await redeemCode(srv.origin, { ...a, verifier: undefined }), 'confidential without PKCE');
    expectError(await refresh(srv.origin, t.refresh_token, { clientId: 'backend', auth: {}, extra: { client_id: 'backend' } }), 401, 'invalid_client', 'refresh without the secret');
    const bad = await refresh(srv.origin, t.refresh_token, { clientId: 'backend', auth: { basic: ['backend', 'nope'] } });
    expectError(bad, 401, 'invalid_client', 'refresh with a wrong secret (basic)');
    assert.match(bad.headers.get('www-authenticate') ?? '', /^Basic realm="latchkey"/);
    expectOk(await refresh(srv.origin, t.refresh_token, { clientId: 'backend' }), 'refresh with the secret still works (failed auth did not consume it)');
  });

  it('client authentication failures', async () => {
    const a = await authorize(srv.origin, { clientId: 'backend' });
    const wrongBasic = await redeemCode(srv.origin, a, { auth: { basic: ['backend', 'wrong'] } });
    expectError(wrongBasic, 401, 'invalid_client', 'wrong secret (basic)');
    assert.match(wrongBasic.headers.get('www-authenticate') ?? '', /^Basic realm="latchkey"/, 'WWW-Authenticate: Basic realm="latchkey"');
    const wrongPost = await redeemCode(srv.origin, a, { auth: {}, extra: { client_id: 'backend', client_secret: 'wrong' } });
    expectError(wrongPost, 401, 'invalid_client', 'wrong secret (post)');
    const missing = await redeemCode(srv.origin, a, { auth: {}, extra: { client_id: 'backend' } });
    expectError(missing, 401, 'invalid_client', 'missing secret');
    const unknownBasic = await tokenRequest(srv.origin, { grant_type: 'client_credentials' }, { basic: ['nope', 'x'] });
    expectError(unknownBasic, 401, 'invalid_client', 'unknown client (basic)');
    assert.match(unknownBasic.headers.get('www-authenticate') ?? '', /^Basic/);
    const unknownPost = await tokenRequest(srv.origin, { grant_type: 'refresh_token', refresh_token: 'a.b', client_id: 'nope' });
    expectError(unknownPost, 401, 'invalid_client', 'unknown client (post)');
    const both = await redeemCode(srv.origin, a, { auth: { basic: ['backend', BACKEND_SECRET] }, extra: { client_id: 'backend', client_secret: BACKEND_SECRET } });
    expectError(both, 400, 'invalid_request', 'basic and post at once');
    // the code was never redeemed: it still works
    expectOk(await redeemCode(srv.origin, a), 'after failed client auth attempts the code is still usable');
  });

  it('unsupported and missing grant_type', async () => {
    expectError(await tokenRequest(srv.origin, { grant_type: 'password', username: 'alice', password: 'x', client_id: 'demo' }), 400, 'unsupported_grant_type', 'password grant');
    expectError(await tokenRequest(srv.origin, { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', client_id: 'demo' }), 400, 'unsupported_grant_type', 'device grant');
    expectError(await tokenRequest(srv.origin, { client_id: 'demo', code: 'x' }), 400, 'invalid_request', 'missing grant_type');
    expectError(await tokenRequest(srv.origin, ''), 400, 'invalid_request', 'empty body');
  });

  it('refresh token of client A presented by client B → invalid_grant', async () => {
    const { tokens } = await login(srv.origin);
    expectError(await refresh(srv.origin, tokens.refresh_token, { clientId: 'other' }), 400, 'invalid_grant', 'other public client');
    expectError(await refresh(srv.origin, tokens.refresh_token, { clientId: 'backend' }), 400, 'invalid_grant', 'confidential client');
  });

  it('rotation: a chain of refreshes works, each with a new token', async () => {
    const { tokens } = await login(srv.origin);
    let rt = tokens.refresh_token;
    const seen = new Set([rt]);
    for (let i = 0; i < 4; i++) {
      const t = expectOk(await refresh(srv.origin, rt), `refresh #${i}`);
      assert.ok(t.refresh_token, 'rotated token returned');
      assert.ok(!seen.has(t.refresh_token), 'every refresh token is new');
      assert.equal(t.token_type, 'Bearer');
      assert.equal(typeof t.expires_in, 'number');
      seen.add(t.refresh_token);
      rt = t.refresh_token;
      assert.equal(await valid(srv.origin, t.access_token), 'true');
    }
  });

  it('rotation retry: the previous token again (successor unused) gives a fresh successor; the replaced one is reuse', async () => {
    const { tokens } = await login(srv.origin);
    const t0 = tokens.refresh_token;
    const r1 = expectOk(await refresh(srv.origin, t0), 'first refresh');
    const r2 = expectOk(await refresh(srv.origin, t0), 'retry with the previous token');
    assert.ok(r2.refresh_token);
    assert.notEqual(r2.refresh_token, r1.refresh_token, 'a fresh successor');
    assert.equal(await valid(srv.origin, r2.access_token), 'true');
    // r1's token was replaced by r2's: presenting it is reuse
    expectError(await refresh(srv.origin, r1.refresh_token), 400, 'invalid_grant', 'replaced successor');
    assert.equal(await valid(srv.origin, r2.access_token), 'false', 'reuse revokes the whole session');
    assert.equal(await valid(srv.origin, tokens.access_token), 'false');
    expectError(await refresh(srv.origin, r2.refresh_token), 400, 'invalid_grant', 'live token after reuse');
  });

  it('rotation retry works at any position of the chain (the previous token, not only the first)', async () => {
    const { tokens } = await login(srv.origin);
    const r1 = expectOk(await refresh(srv.origin, tokens.refresh_token));
    const r2 = expectOk(await refresh(srv.origin, r1.refresh_token), 'use r1');
    const r2b = expectOk(await refresh(srv.origin, r1.refresh_token), 'retry with r1 (r2 unused)');
    assert.notEqual(r2b.refresh_token, r2.refresh_token);
    const r3 = expectOk(await refresh(srv.origin, r2b.refresh_token), 'the retried successor works');
    assert.equal(await valid(srv.origin, r3.access_token), 'true');
    expectError(await refresh(srv.origin, tokens.refresh_token), 400, 'invalid_grant', 'the first token is long gone');
    assert.equal(await valid(srv.origin, r3.access_token), 'false', 'and presenting it is reuse');
  });

  it('every access token has a unique jti; expires_in matches exp - iat', async () => {
    const { tokens } = await login(srv.origin);
    const seen = new Set();
    let rt = tokens.refresh_token;
    for (const t of [tokens, ...await (async () => {
      const out = [];
      for (let i = 0; i < 3; i++) { const n = expectOk(await refresh(srv.origin, rt)); rt = n.refresh_token; out.push(n); }
      return out;
    })()]) {
      const c = decodeJwt(t.access_token).payload;
      assert.ok(!seen.has(c.jti), 'unique jti');
      seen.add(c.jti);
      assert.ok(Math.abs(t.expires_in - (c.exp - c.iat)) <= 1, `expires_in ${t.expires_in} vs exp-iat ${c.exp - c.iat}`);
    }
  });

  it('reuse of an older token after the successor was used revokes the session', async () => {
    const { tokens } = await login(srv.origin);
    const t0 = tokens.refresh_token;
    const r1 = expectOk(await refresh(srv.origin, t0));
    const r2 = expectOk(await refresh(srv.origin, r1.refresh_token), 'use the successor');
    expectError(await refresh(srv.origin, t0), 400, 'invalid_grant', 'old token after the successor was used');
    assert.equal(await valid(srv.origin, r2.access_token), 'false');
    expectError(await refresh(srv.origin, r2.refresh_token), 400, 'invalid_grant');
  });

  it('rotation disabled: no refresh_token in the response, the same token keeps working', async () => {
    const { tokens } = await login(srv.origin, { clientId: 'norotate', redirectUri: NOROTATE_REDIRECT });
    for (let i = 0; i < 3; i++) {
      const t = expectOk(await refresh(srv.origin, tokens.refresh_token, { clientId: 'norotate' }), `refresh #${i}`);
      assert.equal(t.refresh_token, undefined, 'no refresh_token when rotation is off');
      assert.ok(t.access_token);
      assert.equal(await valid(srv.origin, t.access_token), 'true');
    }
  });

  it('refresh token idle timeout → invalid_grant', async () => {
    const { tokens } = await login(srv.origin, { clientId: 'shortidle', redirectUri: SHORTIDLE_REDIRECT });
    await sleep(3000);
    expectError(await refresh(srv.origin, tokens.refresh_token, { clientId: 'shortidle' }), 400, 'invalid_grant', 'after the idle timeout');
  });

  it('refresh token lifetime → invalid_grant after it (even when used meanwhile)', async () => {
    const { tokens } = await login(srv.origin, { clientId: 'shortlife', redirectUri: SHORTLIFE_REDIRECT });
    const t1 = expectOk(await refresh(srv.origin, tokens.refresh_token, { clientId: 'shortlife' }), 'within the lifetime');
    await sleep(2600);
    expectError(await refresh(srv.origin, t1.refresh_token, { clientId: 'shortlife' }), 400, 'invalid_grant', 'after the lifetime');
  });

  it('using a refresh token resets its idle timeout (refresh every 1.2 s for 6 s with a 3 s idle timeout)', async () => {
    const { tokens } = await login(srv.origin, { clientId: 'idle3', redirectUri: IDLE3_REDIRECT });
    let rt = tokens.refresh_token;
    const started = Date.now();
    for (let i = 0; i < 5; i++) {
      await sleep(1200);
      const r = await refresh(srv.origin, rt, { clientId: 'idle3' });
      assert.equal(r.status, 200, `refresh #${i} at ${Date.now() - started} ms (last use ~1.2 s before): ${r.text}`);
      rt = r.json().refresh_token;
    }
    await sleep(3500);
    expectError(await refresh(srv.origin, rt, { clientId: 'idle3' }), 400, 'invalid_grant', 'idle for 3.5 s');
  });

  it('refresh_token_idle_timeout_enabled: false ignores the idle timeout', async () => {
    const { tokens } = await login(srv.origin, { clientId: 'noidle', redirectUri: NOIDLE_REDIRECT });
    await sleep(3000);
    expectOk(await refresh(srv.origin, tokens.refresh_token, { clientId: 'noidle' }), 'idle timeout disabled');
  });

  it('traditional_webapp with a secret must authenticate; without one it is public and needs PKCE', async () => {
    const a = await authorize(srv.origin, { clientId: 'webapp', redirectUri: WEBAPP_REDIRECT });
    expectError(await redeemCode(srv.origin, a, { auth: {}, extra: { client_id: 'webapp' } }), 401, 'invalid_client', 'webapp without its secret');
    const t = expectOk(await redeemCode(srv.origin, a, { auth: { basic: ['webapp', WEBAPP_SECRET] } }), 'webapp with its secret');
    expectOk(await refresh(srv.origin, t.refresh_token, { clientId: 'webapp', auth: { basic: ['webapp', WEBAPP_SECRET] } }), 'webapp refresh');
    // the public one: no code_challenge → invalid_request at authorize
    const u = new URL('/oauth2/authorize', srv.origin);
    for (const [k, v] of Object.entries({ response_type: 'code', client_id: 'webpublic', redirect_uri: WEBPUBLIC_REDIRECT, scope: 'openid', state: 'w' })) u.searchParams.set(k, v);
    const r = await req(u.toString());
    assert.equal(r.status, 302, `${r.status}`);
    assert.equal(new URL(r.location).searchParams.get('error'), 'invalid_request');
    const a2 = await authorize(srv.origin, { clientId: 'webpublic', redirectUri: WEBPUBLIC_REDIRECT });
    expectOk(await redeemCode(srv.origin, a2), 'public webapp with PKCE');
  });

  it('client_credentials for a confidential client; refused for the spa client', async () => {
    const t = expectOk(await tokenRequest(srv.origin, { grant_type: 'client_credentials' }, { basic: ['backend', BACKEND_SECRET] }));
    assert.equal(t.refresh_token, undefined, 'no refresh token');
    assert.equal(t.id_token, undefined, 'no id token');
    assert.equal(t.token_type, 'Bearer');
    const c = decodeJwt(t.access_token);
    assert.equal(c.header.typ, 'at+jwt');
    assert.equal(c.payload.sub, 'client_id_backend');
    assert.equal(c.payload.client_id, 'backend');
    assert.equal(c.payload.iss, srv.origin);
    const aud = [].concat(c.payload.aud);
    assert.ok(aud.includes(srv.origin), `aud defaults to the issuer: ${JSON.stringify(c.payload.aud)}`);
    const jwks = await getJson(`${srv.origin}/oauth2/jwks`);
    assert.ok(verifyJwt(t.access_token, jwks));

    const tr = expectOk(await tokenRequest(srv.origin, { grant_type: 'client_credentials', resource: 'https://api.example.test', scope: 'read' },
      { basic: ['backend', BACKEND_SECRET] }), 'with resource');
    const cr = decodeJwt(tr.access_token).payload;
    assert.ok([].concat(cr.aud).includes('https://api.example.test'), `resource becomes aud: ${JSON.stringify(cr.aud)}`);
    assert.equal(cr.scope, 'read', 'requested scope in the token');
    assert.equal(tr.scope, 'read', 'requested scope in the response');
    const tp = expectOk(await tokenRequest(srv.origin, { grant_type: 'client_credentials', client_id: 'backend', client_secret: BACKEND_SECRET }), 'post auth');
    assert.equal(decodeJwt(tp.access_token).payload.sub, 'client_id_backend');

    // a client token has no user and no session: not an identity at the resolver or userinfo
    assert.deepEqual((await resolve(srv.origin, { bearer: t.access_token })).ag, { 'x-authgear-session-valid': 'false' }, 'client token at the resolver');
    assert.equal((await req(`${srv.origin}/oauth2/userinfo`, { bearer: t.access_token })).status, 401, 'client token at userinfo');
    expectError(await tokenRequest(srv.origin, { grant_type: 'client_credentials', client_id: 'demo' }), 400, 'unauthorized_client', 'spa client');
    expectError(await tokenRequest(srv.origin, { grant_type: 'client_credentials' }, { basic: ['backend', 'wrong'] }), 401, 'invalid_client', 'wrong secret');
  });

  it('50 concurrent refreshes of one token: 200 or invalid_grant, never 5xx, and the session survives', async () => {
    const { tokens } = await login(srv.origin);
    const t0 = tokens.refresh_token;
    const results = await Promise.all(Array.from({ length: 50 }, () => refresh(srv.origin, t0)));
    const statuses = results.map((r) => r.status);
    for (const r of results) {
      assert.ok(r.status < 500, `no 5xx (got ${r.status} ${r.text})`);
      checkTokenHeaders(r, 'concurrent');
      if (r.status !== 200) {
        assert.equal(r.status, 400, `only 200 or 400: ${r.status} ${r.text}`);
        assert.equal(r.json().error, 'invalid_grant', r.text);
      }
    }
    const oks = results.filter((r) => r.status === 200).map((r) => r.json());
    assert.ok(oks.length >= 1, `at least one success (statuses ${JSON.stringify(statuses)})`);
    for (const t of oks) {
      assert.ok(t.refresh_token, 'rotated token');
      assert.equal(t.refresh_token.split('.')[0], t0.split('.')[0]);
    }
    // Losing a race never revokes the session: every issued access token still resolves.
    for (const t of oks) assert.equal(await valid(srv.origin, t.access_token), 'true', 'session alive after the race');
    assert.equal(await valid(srv.origin, tokens.access_token), 'true');
    // No successor has been used, so presenting t0 is a retry (not reuse): it gives a fresh successor.
    const retry = expectOk(await refresh(srv.origin, t0), 'retry after the race');
    const next = expectOk(await refresh(srv.origin, retry.refresh_token), 'use the fresh successor');
    assert.equal(await valid(srv.origin, next.access_token), 'true');
    // Now every token returned during the race is dead; presenting one is reuse.
    expectError(await refresh(srv.origin, oks[0].refresh_token), 400, 'invalid_grant', 'a racer token after the chain moved on');
    assert.equal(await valid(srv.origin, next.access_token), 'false', 'reuse revokes');
  });

  it('20 concurrent redemptions of one code (15 rounds): at most one 200, the rest invalid_grant, and nothing issued stays valid', async () => {
    // RFC 6749 §4.1.2: a replayed code revokes what it issued. Under a race the replay
    // may land before the winner has stored its session; then the winner is refused too.
    // Either way no token from a replayed code may work afterwards.
    const problems = [];
    for (let round = 0; round < 15; round++) {
      const a = await authorize(srv.origin);
      const results = await Promise.all(Array.from({ length: 20 }, () => redeemCode(srv.origin, a)));
      for (const r of results) {
        assert.ok(r.status < 500, `no 5xx: ${r.status} ${r.text}`);
        checkTokenHeaders(r, 'concurrent code');
      }
      const oks = results.filter((r) => r.status === 200);
      assert.ok(oks.length <= 1, `at most one redemption wins (statuses ${JSON.stringify(results.map((r) => r.status))})`);
      for (const r of results.filter((x) => x.status !== 200)) {
        assert.equal(r.status, 400);
        assert.equal(r.json().error, 'invalid_grant');
      }
      for (const ok of oks) {
        const t = ok.json();
        const v = await valid(srv.origin, t.access_token);
        const rr = await refresh(srv.origin, t.refresh_token);
        if (v !== 'false' || rr.status !== 400) {
          problems.push(`round ${round}: after 19 replays the winning redemption's access token resolves ${v} and its refresh gives ${rr.status}`);
        }
      }
    }
    assert.deepEqual(problems, [], problems.join('\n'));
  });

  it('a single redemption of a code succeeds', async () => {
    const a = await authorize(srv.origin);
    const r = await redeemCode(srv.origin, a);
    assert.equal(r.status, 200, r.text);
    assert.equal(await valid(srv.origin, r.json().access_token), 'true');
  });

  it('50 concurrent refreshes with rotation off all succeed', async () => {
    const { tokens } = await login(srv.origin, { clientId: 'norotate', redirectUri: NOROTATE_REDIRECT });
    const results = await Promise.all(Array.from({ length: 50 }, () => refresh(srv.origin, tokens.refresh_token, { clientId: 'norotate' })));
    for (const r of results) assert.equal(r.status, 200, `${r.status} ${r.text}`);
  });

  it('every token response has no-store / no-cache (success and errors)', async () => {
    const rs = [
      await tokenRequest(srv.origin, { grant_type: 'client_credentials' }, { basic: ['backend', BACKEND_SECRET] }),
      await tokenRequest(srv.origin, { grant_type: 'nope' }),
      await tokenRequest(srv.origin, { grant_type: 'refresh_token', refresh_token: 'x.y', client_id: 'demo' }),
      await tokenRequest(srv.origin, { grant_type: 'client_credentials' }, { basic: ['backend', 'bad'] }),
    ];
    for (const r of rs) checkTokenHeaders(r, `status ${r.status}`);
  });
});

describe('m2m client', { timeout: 60000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({
      clientSecrets: { backend: BACKEND_SECRET, machine: 'machine-secret-9876543210' },
      config: (o) => baseConfig(o, {
        clients: [
          demoClient(),
          backendClient(),
          { client_id: 'machine', name: 'Machine', x_application_type: 'm2m', grant_types: ['client_credentials'], access_token_lifetime_seconds: 600 },
        ],
      }),
    });
  });
  after(async () => { await srv?.cleanup(); });

  it('m2m uses client_credentials and nothing else', async () => {
    const t = expectOk(await tokenRequest(srv.origin, { grant_type: 'client_credentials' }, { basic: ['machine', 'machine-secret-9876543210'] }));
    const c = decodeJwt(t.access_token).payload;
    assert.equal(c.sub, 'client_id_machine');
    assert.equal(c.exp - c.iat, 600);
    assert.equal(t.refresh_token, undefined);
    expectError(await tokenRequest(srv.origin, { grant_type: 'authorization_code', code: 'x', redirect_uri: DEMO_REDIRECT, code_verifier: 'x'.repeat(43) },
      { basic: ['machine', 'machine-secret-9876543210'] }), 400, 'unauthorized_client', 'm2m authorization_code');
    expectError(await tokenRequest(srv.origin, { grant_type: 'refresh_token', refresh_token: 'a.b' },
      { basic: ['machine', 'machine-secret-9876543210'] }), 400, 'unauthorized_client', 'm2m refresh_token');
  });
});
