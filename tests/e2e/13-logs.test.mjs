// Server logs never contain secrets: tokens, codes, cookie values, passwords,
// client secrets, PKCE verifiers, CSRF tokens.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, authorize, redeemCode, refresh, revoke, resolve, req, Browser, authorizeUrl, pkce, randomString,
  DEMO_REDIRECT, BACKEND_SECRET, tokenRequest, parseForm, sleep,
} from './harness.mjs';

const PASSWORD = 'Pa55word-that-must-not-leak-7Qx';
const WRONG_PASSWORD = 'wrong-Pa55word-must-not-leak-3Zk';

for (const variant of [
  { name: 'text logs', serveArgs: [] },
  { name: 'json logs at LATCHKEY_LOG=debug', serveArgs: ['--log-format', 'json'], serveEnv: { LATCHKEY_LOG: 'debug' } },
]) {
  describe(`logs contain no secrets (${variant.name})`, { timeout: 90000 }, () => {
    let srv;
    before(async () => {
      srv = await startServer({ users: [{ username: 'alice', password: PASSWORD }], serveArgs: variant.serveArgs, serveEnv: variant.serveEnv });
    });
    after(async () => { await srv?.cleanup(); });

    it('after a full flow with failures, nothing secret is in stdout/stderr', async () => {
      const secrets = { password: PASSWORD, 'wrong password': WRONG_PASSWORD, 'client secret': BACKEND_SECRET };

      // a failed login first
      const b0 = new Browser(srv.origin);
      const { challenge } = pkce();
      const page = await b0.go(authorizeUrl(srv.origin, {
        response_type: 'code', client_id: 'demo', redirect_uri: DEMO_REDIRECT, scope: 'openid', state: randomString(),
        code_challenge: challenge, code_challenge_method: 'S256',
      }));
      secrets['csrf token'] = parseForm(page.text).fields.csrf_token;
      const failed = await b0.submit(page, { username: 'alice', password: WRONG_PASSWORD });
      assert.equal(failed.status, 200);

      const a = await authorize(srv.origin, { password: PASSWORD });
      secrets.code = a.code;
      secrets['code verifier'] = a.verifier;
      const cookie = a.browser.cookie('session');
      secrets['session cookie'] = cookie;
      secrets['session cookie secret'] = cookie.split('.').slice(1).join('.');
      const t = (await redeemCode(srv.origin, a)).json();
      assert.ok(t.access_token);
      // replay the code (error path)
      await redeemCode(srv.origin, a);
      const a2 = await authorize(srv.origin, { password: PASSWORD, browser: new Browser(srv.origin) });
      secrets.code2 = a2.code;
      const t2 = (await redeemCode(srv.origin, a2)).json();
      const r = (await refresh(srv.origin, t2.refresh_token)).json();
      for (const [k, v] of Object.entries({ t2, r })) {
        secrets[`${k} access token`] = v.access_token;
        secrets[`${k} access token signature`] = v.access_token.split('.')[2];
        secrets[`${k} refresh token`] = v.refresh_token;
        secrets[`${k} refresh secret`] = v.refresh_token.split('.').slice(1).join('.');
      }
      secrets['id token'] = t2.id_token;
      secrets['id token signature'] = t2.id_token.split('.')[2];
      await resolve(srv.origin, { bearer: r.access_token });
      await resolve(srv.origin, { cookie: `session=${cookie}` });
      await resolve(srv.origin, { bearer: `${r.access_token}x` });
      await req(`${srv.origin}/oauth2/userinfo`, { bearer: r.access_token });
      // reuse of a rotated token (error path) and a bad secret
      await refresh(srv.origin, t2.refresh_token);
      await refresh(srv.origin, t2.refresh_token);
      await tokenRequest(srv.origin, { grant_type: 'client_credentials' }, { basic: ['backend', BACKEND_SECRET] });
      await tokenRequest(srv.origin, { grant_type: 'client_credentials' }, { basic: ['backend', `${BACKEND_SECRET}-wrong`] });
      secrets['wrong client secret'] = `${BACKEND_SECRET}-wrong`;
      await revoke(srv.origin, t.refresh_token);
      secrets['first refresh token'] = t.refresh_token;
      secrets['first access token'] = t.access_token;
      await req(`${srv.origin}/oauth2/end_session?id_token_hint=${encodeURIComponent(t.id_token)}`);
      await sleep(300); // let log lines flush

      const logs = srv.logs();
      assert.ok(logs.includes('latchkey listening on'), 'logs were captured');
      for (const [what, value] of Object.entries(secrets)) {
        assert.ok(value && value.length >= 8, `${what} is a real value`);
        assert.ok(!logs.includes(value), `the ${what} appears in the server logs`);
        assert.ok(!logs.includes(encodeURIComponent(value)), `the ${what} (URL-encoded) appears in the server logs`);
      }
    });
  });
}
