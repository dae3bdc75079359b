// Discovery documents, JWKS, and that every signing algorithm `init` offers
// produces tokens that verify against the published JWKS.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, req, getJson, login, decodeJwt, verifyJwt, resolve, refresh,
} from './harness.mjs';

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

function checkJwks(jwks, expectedAlg) {
  assert.ok(Array.isArray(jwks.keys), 'jwks.keys is an array');
  assert.ok(jwks.keys.length >= 1, 'at least one key');
  for (const k of jwks.keys) {
    assert.equal(typeof k.kty, 'string', 'kty');
    assert.equal(typeof k.kid, 'string', 'kid');
    assert.ok(k.kid.length > 0, 'non-empty kid');
    assert.equal(typeof k.alg, 'string', 'alg');
    assert.equal(k.use, 'sig', 'use: sig');
    for (const m of PRIVATE_MEMBERS) assert.equal(k[m], undefined, `JWKS must not publish private member "${m}"`);
  }
  const kids = jwks.keys.map((k) => k.kid);
  assert.equal(new Set(kids).size, kids.length, 'kids are unique');
  if (expectedAlg) assert.equal(jwks.keys[0].alg, expectedAlg);
}

describe('discovery and JWKS (RS256 default)', { timeout: 60000 }, () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(async () => { await srv?.cleanup(); });

  it('both discovery paths serve the same document with all fields', async () => {
    const a = await req(`${srv.origin}/.well-known/openid-configuration`);
    const b = await req(`${srv.origin}/.well-known/oauth-authorization-server`);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.match(a.headers.get('content-type') ?? '', /application\/json/);
    assert.match(b.headers.get('content-type') ?? '', /application\/json/);
    const da = a.json();
    const db = b.json();
    assert.deepEqual(da, db, 'both paths return the same JSON');
    const o = srv.origin;
    assert.equal(da.issuer, o, 'issuer = public origin');
    assert.equal(da.authorization_endpoint, `${o}/oauth2/authorize`);
    assert.equal(da.token_endpoint, `${o}/oauth2/token`);
    assert.equal(da.userinfo_endpoint, `${o}/oauth2/userinfo`);
    assert.equal(da.revocation_endpoint, `${o}/oauth2/revoke`);
    assert.equal(da.end_session_endpoint, `${o}/oauth2/end_session`);
    assert.equal(da.jwks_uri, `${o}/oauth2/jwks`);
    assert.deepEqual([...da.response_types_supported].sort(), ['code', 'none']);
    assert.ok(Array.isArray(da.grant_types_supported));
    for (const g of ['authorization_code', 'refresh_token', 'client_credentials']) {
      assert.ok(da.grant_types_supported.includes(g), `grant_types_supported has ${g}`);
    }
    assert.deepEqual(da.code_challenge_methods_supported, ['S256']);
    assert.deepEqual([...da.token_endpoint_auth_methods_supported].sort(),
      ['client_secret_basic', 'client_secret_post', 'none']);
    assert.ok(Array.isArray(da.id_token_signing_alg_values_supported));
    assert.ok(da.id_token_signing_alg_values_supported.includes('RS256'));
    assert.ok(Array.isArray(da.scopes_supported));
    for (const s of ['openid', 'offline_access']) assert.ok(da.scopes_supported.includes(s), `scopes_supported has ${s}`);
    assert.ok(Array.isArray(da.subject_types_supported) && da.subject_types_supported.length > 0);
    assert.equal(da.authorization_response_iss_parameter_supported, true);
    assert.equal(a.headers.get('x-content-type-options'), 'nosniff');
  });

  it('JWKS has kid/alg/use on every key and no private members', async () => {
    const r = await req(`${srv.origin}/oauth2/jwks`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /json/);
    const jwks = r.json();
    checkJwks(jwks, 'RS256');
    const k = jwks.keys[0];
    assert.equal(k.kty, 'RSA');
    assert.equal(typeof k.n, 'string');
    assert.equal(typeof k.e, 'string');
    assert.ok(Buffer.from(k.n, 'base64url').length >= 256, 'RSA modulus is at least 2048 bits');
  });

  it('RS256 tokens verify against the JWKS', async () => {
    const jwks = await getJson(`${srv.origin}/oauth2/jwks`);
    const { tokens } = await login(srv.origin);
    const at = decodeJwt(tokens.access_token);
    assert.equal(at.header.alg, 'RS256');
    assert.ok(verifyJwt(tokens.access_token, jwks), 'access token signature verifies');
    assert.ok(verifyJwt(tokens.id_token, jwks), 'id token signature verifies');
  });
});

for (const alg of ['ES256', 'EdDSA']) {
  describe(`init --algorithm ${alg}`, { timeout: 60000 }, () => {
    let srv;
    before(async () => { srv = await startServer({ algorithm: alg }); });
    after(async () => { await srv?.cleanup(); });

    it(`publishes a ${alg} key and discovery advertises it`, async () => {
      const jwks = await getJson(`${srv.origin}/oauth2/jwks`);
      checkJwks(jwks, alg);
      const k = jwks.keys[0];
      if (alg === 'ES256') {
        assert.equal(k.kty, 'EC');
        assert.equal(k.crv, 'P-256');
        assert.equal(typeof k.x, 'string');
        assert.equal(typeof k.y, 'string');
      } else {
        assert.equal(k.kty, 'OKP');
        assert.equal(k.crv, 'Ed25519');
        assert.equal(typeof k.x, 'string');
      }
      const d = await getJson(`${srv.origin}/.well-known/openid-configuration`);
      assert.ok(d.id_token_signing_alg_values_supported.includes(alg),
        `id_token_signing_alg_values_supported ${JSON.stringify(d.id_token_signing_alg_values_supported)} includes ${alg}`);
    });

    it(`issues working ${alg} tokens (signature, resolver, refresh)`, async () => {
      const jwks = await getJson(`${srv.origin}/oauth2/jwks`);
      const { tokens } = await login(srv.origin);
      const at = decodeJwt(tokens.access_token);
      const idt = decodeJwt(tokens.id_token);
      assert.equal(at.header.alg, alg);
      assert.equal(idt.header.alg, alg);
      assert.equal(at.header.typ, 'at+jwt');
      assert.ok(jwks.keys.some((k) => k.kid === at.header.kid), 'kid in JWKS');
      assert.ok(verifyJwt(tokens.access_token, jwks), 'access token signature verifies');
      assert.ok(verifyJwt(tokens.id_token, jwks), 'id token signature verifies');
      const r = await resolve(srv.origin, { bearer: tokens.access_token });
      assert.equal(r.status, 200);
      assert.equal(r.ag['x-authgear-session-valid'], 'true');
      const rr = await refresh(srv.origin, tokens.refresh_token);
      assert.equal(rr.status, 200, rr.text);
      const t2 = rr.json();
      assert.ok(verifyJwt(t2.access_token, jwks));
      assert.equal(decodeJwt(t2.access_token).header.alg, alg);
    });
  });
}
