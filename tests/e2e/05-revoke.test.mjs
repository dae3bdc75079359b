// POST /oauth2/revoke (RFC 7009).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, login, refresh, revoke, resolve, req, raw, BACKEND_SECRET, signJwt, decodeJwt,
} from './harness.mjs';
import crypto from 'node:crypto';

async function valid(origin, accessToken) {
  return (await resolve(origin, { bearer: accessToken })).ag['x-authgear-session-valid'];
}

function expectRevoked200(r, what) {
  assert.equal(r.status, 200, `${what}: ${r.status} ${r.text}`);
  assert.equal(r.text, '', `${what}: empty body`);
}

describe('revoke', { timeout: 90000 }, () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(async () => { await srv?.cleanup(); });

  it('revoking a refresh token kills the session at the resolver on the very next request', async () => {
    const { tokens } = await login(srv.origin);
    assert.equal(await valid(srv.origin, tokens.access_token), 'true');
    expectRevoked200(await revoke(srv.origin, tokens.refresh_token, { extra: { token_type_hint: 'refresh_token' } }), 'revoke refresh');
    assert.equal(await valid(srv.origin, tokens.access_token), 'false');
    const r = await refresh(srv.origin, tokens.refresh_token);
    assert.equal(r.status, 400);
    assert.equal(r.json().error, 'invalid_grant');
  });

  it('a revocation is seen on every connection (no worker cache hides it)', async () => {
    const { tokens, browser } = await login(srv.origin);
    const cookie = `session=${browser.cookie('session')}`;
    const onNewConnections = async (cred, n = 24) => {
      const rs = await Promise.all(Array.from({ length: n }, () => raw(srv.origin, {
        path: '/_resolver/resolve', headers: cred.bearer ? { authorization: `Bearer ${cred.bearer}` } : { cookie: cred.cookie },
      })));
      return [...new Set(rs.map((r) => r.headers['x-authgear-session-valid']))];
    };
    // warm every worker (and any verification cache) with the valid token
    assert.deepEqual(await onNewConnections({ bearer: tokens.access_token }), ['true']);
    assert.deepEqual(await onNewConnections({ cookie }), ['true']);
    assert.equal((await revoke(srv.origin, tokens.refresh_token)).status, 200);
    assert.deepEqual(await onNewConnections({ bearer: tokens.access_token }), ['false'], 'every connection sees the revocation at once');
  });

  it('revoking an access token kills its session (and its refresh token)', async () => {
    const { tokens } = await login(srv.origin);
    // a wrong hint is ignored
    expectRevoked200(await revoke(srv.origin, tokens.access_token, { extra: { token_type_hint: 'refresh_token' } }), 'revoke access');
    assert.equal(await valid(srv.origin, tokens.access_token), 'false');
    const r = await refresh(srv.origin, tokens.refresh_token);
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json().error, 'invalid_grant');
  });

  it('revoke with client credentials: correct ones work, wrong ones → 401 invalid_client', async () => {
    const { tokens } = await login(srv.origin, { clientId: 'backend' });
    const bad = await revoke(srv.origin, tokens.refresh_token, { req: { basic: ['backend', 'wrong'] } });
    assert.equal(bad.status, 401, bad.text);
    assert.equal(bad.json().error, 'invalid_client');
    assert.equal(await valid(srv.origin, tokens.access_token), 'true', 'a rejected revoke does nothing');
    expectRevoked200(await revoke(srv.origin, tokens.refresh_token, { req: { basic: ['backend', BACKEND_SECRET] } }), 'authenticated revoke');
    assert.equal(await valid(srv.origin, tokens.access_token), 'false');
  });

  it("a token of another client than the authenticated one is a no-op 200", async () => {
    const { tokens } = await login(srv.origin); // demo
    expectRevoked200(await revoke(srv.origin, tokens.refresh_token, { req: { basic: ['backend', BACKEND_SECRET] } }), 'foreign token');
    assert.equal(await valid(srv.origin, tokens.access_token), 'true', 'not revoked');
  });

  it('unknown tokens → 200; a forged JWT → 200 and no effect', async () => {
    for (const t of ['unknown', 'abc.def', 'x'.repeat(200), 'eyJhbGciOiJub25lIn0.e30.']) {
      expectRevoked200(await revoke(srv.origin, t), `unknown ${t.slice(0, 10)}`);
    }
    const { tokens } = await login(srv.origin);
    const { payload, header } = decodeJwt(tokens.access_token);
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const forged = signJwt(header, payload, privateKey); // same kid and sid, wrong key
    expectRevoked200(await revoke(srv.origin, forged), 'forged JWT');
    assert.equal(await valid(srv.origin, tokens.access_token), 'true', 'a forged token cannot revoke a session');
  });

  it('missing token → 400 invalid_request', async () => {
    const r = await req(`${srv.origin}/oauth2/revoke`, { method: 'POST', form: { token_type_hint: 'access_token' } });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json().error, 'invalid_request');
    const r2 = await req(`${srv.origin}/oauth2/revoke`, { method: 'POST', form: {} });
    assert.equal(r2.status, 400, r2.text);
    assert.equal(r2.json().error, 'invalid_request');
  });

  it('CORS headers for an allowed origin', async () => {
    const r = await revoke(srv.origin, 'unknown', { req: { origin: 'http://127.0.0.1:4000' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('access-control-allow-origin'), 'http://127.0.0.1:4000');
    assert.equal(r.headers.get('access-control-allow-credentials'), 'true');
    assert.match(r.headers.get('vary') ?? '', /origin/i);
  });
});
