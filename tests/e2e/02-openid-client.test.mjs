// The full code flow driven by a certified OpenID relying-party library
// (openid-client v6) against the demo public client: discovery, PKCE S256,
// state, nonce, iss in the authorization response, code grant with ID token
// validation, userinfo, refresh with rotation, revocation.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';
import {
  startServer, Browser, DEMO_REDIRECT, DEFAULT_PASSWORD, decodeJwt, verifyJwt, getJson, resolve, CLAIM, nowSec,
  BACKEND_REDIRECT, BACKEND_SECRET,
} from './harness.mjs';

describe('openid-client full flow', { timeout: 90000 }, () => {
  let srv;
  let aliceId;
  before(async () => {
    srv = await startServer({ users: [{ username: 'alice', verified: true, roles: ['admin', 'viewer'] }] });
    aliceId = srv.userIds.alice;
  });
  after(async () => { await srv?.cleanup(); });

  it('discovery → authorize (PKCE, state, nonce) → login → code grant → userinfo → refresh → revoke', async () => {
    const config = await client.discovery(new URL(srv.origin), 'demo', { token_endpoint_auth_method: 'none' },
      client.None(), { execute: [client.allowInsecureRequests] });
    const meta = config.serverMetadata();
    assert.equal(meta.issuer, srv.origin);
    assert.equal(meta.authorization_response_iss_parameter_supported, true);

    const verifier = client.randomPKCECodeVerifier();
    const challenge = await client.calculatePKCECodeChallenge(verifier);
    const state = client.randomState();
    const nonce = client.randomNonce();
    const authUrl = client.buildAuthorizationUrl(config, {
      redirect_uri: DEMO_REDIRECT,
      scope: 'openid offline_access',
      code_challenge: challenge,
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    assert.equal(authUrl.origin, srv.origin);

    const browser = new Browser(srv.origin);
    const page = await browser.go(authUrl.toString());
    assert.equal(page.status, 200, `login page: ${page.text.slice(0, 200)}`);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    const done = await browser.submit(page, { username: 'alice', password: DEFAULT_PASSWORD });
    assert.equal(done.status, 302, `login POST: ${done.status} ${done.text.slice(0, 300)}`);
    const cb = new URL(done.location);
    assert.equal(`${cb.origin}${cb.pathname}`, DEMO_REDIRECT);
    assert.equal(cb.searchParams.get('state'), state);
    assert.equal(cb.searchParams.get('iss'), srv.origin);
    assert.ok(cb.searchParams.get('code'), 'code present');

    const tokens = await client.authorizationCodeGrant(config, cb, {
      pkceCodeVerifier: verifier,
      expectedState: state,
      expectedNonce: nonce,
      idTokenExpected: true,
    });
    assert.equal(tokens.token_type.toLowerCase(), 'bearer');
    assert.equal(typeof tokens.expires_in, 'number');
    assert.ok(tokens.refresh_token, 'refresh_token issued for offline_access');
    assert.ok(tokens.id_token, 'id_token issued for openid');

    // ---- access token
    const jwks = await getJson(`${srv.origin}/oauth2/jwks`);
    const at = decodeJwt(tokens.access_token);
    assert.equal(at.header.typ, 'at+jwt');
    assert.equal(at.header.alg, 'RS256');
    assert.ok(jwks.keys.some((k) => k.kid === at.header.kid), 'access token kid is in the JWKS');
    assert.ok(verifyJwt(tokens.access_token, jwks), 'access token signature verifies with node:crypto');
    const c = at.payload;
    assert.equal(c.iss, srv.origin);
    assert.ok(Array.isArray(c.aud), 'aud is an array');
    assert.ok(c.aud.includes(srv.origin), 'aud contains the issuer');
    assert.equal(c.sub, aliceId);
    assert.equal(c.client_id, 'demo');
    assert.deepEqual(c.scope.split(' ').sort(), ['offline_access', 'openid']);
    assert.equal(typeof c.iat, 'number');
    assert.ok(Math.abs(c.iat - nowSec()) < 60, 'iat is now');
    assert.equal(c.exp, c.iat + 1800, 'exp = iat + access_token_lifetime_seconds');
    assert.equal(typeof c.auth_time, 'number');
    assert.ok(Array.isArray(c.amr) && c.amr.includes('pwd'), 'amr contains pwd');
    assert.equal(typeof c.jti, 'string');
    assert.equal(typeof c.sid, 'string');
    assert.ok(c.sid.length > 0);
    assert.equal(c[CLAIM.anonymous], false);
    assert.equal(c[CLAIM.verified], true);
    assert.equal(c[CLAIM.canReauth], true);
    assert.deepEqual([...c[CLAIM.roles]].sort(), ['admin', 'viewer']);
    assert.equal(tokens.expires_in <= 1800 && tokens.expires_in > 1700, true, `expires_in ${tokens.expires_in}`);

    // ---- ID token (already validated by openid-client; check our own promises too)
    const idt = decodeJwt(tokens.id_token);
    assert.equal(idt.header.typ, 'JWT');
    assert.ok(jwks.keys.some((k) => k.kid === idt.header.kid));
    assert.ok(verifyJwt(tokens.id_token, jwks));
    const ic = tokens.claims();
    assert.equal(ic.iss, srv.origin);
    assert.equal(ic.sub, aliceId);
    assert.equal(ic.nonce, nonce);
    assert.ok(Array.isArray(idt.payload.aud) && idt.payload.aud.includes('demo'), 'id token aud is an array with client_id');
    assert.equal(typeof ic.auth_time, 'number');
    assert.equal(ic.auth_time, c.auth_time, 'same auth_time in both tokens');
    assert.equal(typeof ic.sid, 'string');
    assert.ok(Array.isArray(ic.amr) && ic.amr.includes('pwd'));
    assert.equal(ic.exp, ic.iat + 300, 'id token exp = iat + 300');
    assert.equal(ic[CLAIM.verified], true);
    assert.equal(ic.preferred_username, undefined, 'no preferred_username without scope profile');

    // ---- resolver and userinfo
    const r1 = await resolve(srv.origin, { bearer: tokens.access_token });
    assert.equal(r1.ag['x-authgear-session-valid'], 'true');
    assert.equal(r1.ag['x-authgear-user-id'], aliceId);

    const ui = await client.fetchUserInfo(config, tokens.access_token, aliceId);
    assert.equal(ui.sub, aliceId);
    assert.equal(ui[CLAIM.verified], true);
    assert.equal(ui[CLAIM.anonymous], false);
    assert.equal(ui[CLAIM.canReauth], true);
    assert.deepEqual([...ui[CLAIM.roles]].sort(), ['admin', 'viewer']);

    // ---- refresh with rotation
    const t2 = await client.refreshTokenGrant(config, tokens.refresh_token);
    assert.ok(t2.access_token);
    assert.ok(t2.refresh_token, 'rotation: a new refresh token');
    assert.notEqual(t2.refresh_token, tokens.refresh_token);
    assert.notEqual(t2.access_token, tokens.access_token);
    assert.equal(t2.refresh_token.split('.')[0], tokens.refresh_token.split('.')[0], 'same session id in the rotated token');
    assert.match(t2.refresh_token, /^[^.]+\.[A-Za-z0-9]{32}$/, 'refresh token format <session id>.<32 alnum>');
    assert.equal(decodeJwt(t2.access_token).payload.sid, c.sid, 'same sid after refresh');
    assert.ok(verifyJwt(t2.access_token, jwks));

    // ---- revoke the (current) refresh token
    await client.tokenRevocation(config, t2.refresh_token);
    for (const token of [tokens.access_token, t2.access_token]) {
      const r = await resolve(srv.origin, { bearer: token });
      assert.equal(r.status, 200);
      assert.equal(r.ag['x-authgear-session-valid'], 'false', 'revoked session is invalid at the resolver');
      assert.equal(r.ag['x-authgear-user-id'], undefined);
    }
    await assert.rejects(client.refreshTokenGrant(config, t2.refresh_token), (e) => {
      assert.equal(e.error, 'invalid_grant', `refresh after revoke: ${e.message}`);
      return true;
    });
    await assert.rejects(client.fetchUserInfo(config, t2.access_token, aliceId), 'userinfo rejects a revoked session');
  });

  it('response_type=code with a confidential client (client_secret_basic) via openid-client', async () => {
    const config = await client.discovery(new URL(srv.origin), 'backend', { token_endpoint_auth_method: 'client_secret_basic' },
      client.ClientSecretBasic(BACKEND_SECRET), { execute: [client.allowInsecureRequests] });
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const authUrl = client.buildAuthorizationUrl(config, {
      redirect_uri: BACKEND_REDIRECT,
      scope: 'openid offline_access profile',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
    });
    const browser = new Browser(srv.origin);
    const done = await browser.login(authUrl.toString(), 'alice');
    assert.equal(done.status, 302);
    const tokens = await client.authorizationCodeGrant(config, new URL(done.location), {
      pkceCodeVerifier: verifier, expectedState: state,
    });
    const ic = tokens.claims();
    assert.equal(ic.sub, aliceId);
    assert.equal(ic.preferred_username, 'alice', 'scope profile adds preferred_username to the ID token');
    const ui = await client.fetchUserInfo(config, tokens.access_token, aliceId);
    assert.equal(ui.preferred_username, 'alice', 'scope profile adds preferred_username to userinfo');
    const t2 = await client.refreshTokenGrant(config, tokens.refresh_token);
    assert.ok(t2.access_token);

    // RP-initiated logout URL built by the library is accepted
    const endUrl = client.buildEndSessionUrl(config, {
      id_token_hint: t2.id_token ?? tokens.id_token,
      post_logout_redirect_uri: 'http://127.0.0.1:4001/',
      state: 'bye',
    });
    const r = await browser.go(endUrl.toString());
    assert.equal(r.status, 302, `end_session: ${r.status} ${r.text.slice(0, 200)}`);
    const loc = new URL(r.location);
    assert.equal(`${loc.origin}${loc.pathname}`, 'http://127.0.0.1:4001/');
    assert.equal(loc.searchParams.get('state'), 'bye');
    const res = await resolve(srv.origin, { bearer: t2.access_token });
    assert.equal(res.ag['x-authgear-session-valid'], 'false');
  });
});

for (const alg of ['ES256', 'EdDSA']) {
  describe(`openid-client against an ${alg} server`, { timeout: 60000 }, () => {
    let srv;
    before(async () => { srv = await startServer({ algorithm: alg }); });
    after(async () => { await srv?.cleanup(); });

    it(`the library validates ${alg} ID tokens end to end`, async () => {
      const config = await client.discovery(new URL(srv.origin), 'demo',
        { token_endpoint_auth_method: 'none', id_token_signed_response_alg: alg },
        client.None(), { execute: [client.allowInsecureRequests] });
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const nonce = client.randomNonce();
      const authUrl = client.buildAuthorizationUrl(config, {
        redirect_uri: DEMO_REDIRECT, scope: 'openid offline_access',
        code_challenge: await client.calculatePKCECodeChallenge(verifier), code_challenge_method: 'S256', state, nonce,
      });
      const done = await new Browser(srv.origin).login(authUrl.toString(), 'alice');
      assert.equal(done.status, 302);
      const tokens = await client.authorizationCodeGrant(config, new URL(done.location), {
        pkceCodeVerifier: verifier, expectedState: state, expectedNonce: nonce, idTokenExpected: true,
      });
      assert.equal(tokens.claims().sub, srv.userIds.alice);
      assert.equal(decodeJwt(tokens.id_token).header.alg, alg);
      const ui = await client.fetchUserInfo(config, tokens.access_token, srv.userIds.alice);
      assert.equal(ui.sub, srv.userIds.alice);
      const t2 = await client.refreshTokenGrant(config, tokens.refresh_token);
      assert.ok(t2.access_token);
      await client.tokenRevocation(config, t2.refresh_token);
      assert.equal((await resolve(srv.origin, { bearer: t2.access_token })).ag['x-authgear-session-valid'], 'false');
    });
  });
}
