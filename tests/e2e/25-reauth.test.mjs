// Re-authentication bound to a user (`id_token_hint` at /oauth2/authorize) and sign-in
// without a browser session cookie (`x_suppress_idp_session_cookie`, sent by Authgear's
// SDK when SSO is off).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, Browser, authorize, authorizeUrl, login, pkce, DEMO_REDIRECT, DEFAULT_PASSWORD, parseForm } from './harness.mjs';

function params(extra = {}) {
  const { challenge } = pkce();
  return {
    response_type: 'code', client_id: 'demo', redirect_uri: DEMO_REDIRECT, scope: 'openid offline_access',
    state: 'st', code_challenge: challenge, code_challenge_method: 'S256', ...extra,
  };
}

describe('re-authentication and cookie suppression', { timeout: 60000 }, () => {
  let srv;
  before(async () => { srv = await startServer({ users: [{ username: 'alice' }, { username: 'bob' }] }); });
  after(async () => { await srv?.stop(); });

  it('an id_token_hint binds the sign-in to its user: another account is refused, the hinted one works', async () => {
    const { tokens } = await login(srv.origin, { username: 'alice' });
    const b = new Browser(srv.origin);
    const page = await b.go(authorizeUrl(srv.origin, params({ id_token_hint: tokens.id_token, max_age: '0' })));
    assert.equal(page.status, 200);
    assert.equal(parseForm(page.text).fields.username, 'alice', 'the hinted user is prefilled');
    const wrong = await b.submit(page, { username: 'bob', password: DEFAULT_PASSWORD });
    assert.equal(wrong.status, 200, 'bob is refused');
    assert.match(wrong.text, /Sign in with the account this application asked for/);
    assert.equal(wrong.setCookies.filter((c) => c.startsWith('session=')).length, 0, 'no session for bob');
    const right = await b.submit(wrong, { username: 'alice', password: DEFAULT_PASSWORD });
    assert.equal(right.status, 302);
    assert.ok(new URL(right.location).searchParams.get('code'));
  });

  it('a browser signed in as someone else is not silently reused for a hinted request', async () => {
    const { tokens } = await login(srv.origin, { username: 'alice' });
    const asBob = await authorize(srv.origin, { username: 'bob' });
    const r = await asBob.browser.go(authorizeUrl(srv.origin, params({ id_token_hint: tokens.id_token })));
    assert.equal(r.status, 200, 'the login form, not a code for bob');
    assert.ok(parseForm(r.text).fields.csrf_token !== undefined);
  });

  it('an invalid id_token_hint is an invalid_request redirect', async () => {
    const r = await new Browser(srv.origin).go(authorizeUrl(srv.origin, params({ id_token_hint: 'eyJhbGciOiJub25lIn0.e30.' })));
    assert.equal(r.status, 302);
    const to = new URL(r.location);
    assert.equal(to.searchParams.get('error'), 'invalid_request');
    assert.equal(to.searchParams.get('state'), 'st');
  });

  it('x_suppress_idp_session_cookie=true signs in without leaving a session cookie', async () => {
    const a = await authorize(srv.origin, { username: 'alice', extra: { x_suppress_idp_session_cookie: 'true' } });
    assert.ok(a.code);
    assert.equal(a.response.setCookies.filter((c) => c.startsWith('session=')).length, 0);
    assert.equal(a.browser.cookie('session'), undefined);
    // The next authorization asks again: there is no browser session to reuse.
    const again = await a.browser.go(authorizeUrl(srv.origin, params()));
    assert.equal(again.status, 200);
  });
});
