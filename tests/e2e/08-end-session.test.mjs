// GET|POST /oauth2/end_session (RP-initiated logout).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  decodeJwt, signJwt, startServer, login, authorize, redeemCode, refresh, resolve, req, Browser, parseForms, parseSetCookie, isClearing,
  DEMO_POST_LOGOUT,
} from './harness.mjs';

function endSessionUrl(origin, params) {
  const u = new URL('/oauth2/end_session', origin);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.searchParams.set(k, v);
  return u.toString();
}

async function valid(origin, cred) {
  return (await resolve(origin, cred)).ag['x-authgear-session-valid'];
}

function assertLoggedOutRedirect(res, state) {
  assert.equal(res.status, 302, `end_session: ${res.status} ${res.text.slice(0, 300)}`);
  const u = new URL(res.location);
  assert.equal(`${u.origin}${u.pathname}`, DEMO_POST_LOGOUT);
  assert.equal(u.searchParams.get('state'), state, 'state appended');
  const c = res.setCookies.map(parseSetCookie).find((x) => x.name === 'session');
  assert.ok(c, `session cookie cleared: ${JSON.stringify(res.setCookies)}`);
  assert.ok(isClearing(c), `Max-Age=0: ${c.raw}`);
  assert.equal(c.attrs['max-age'], '0', `Max-Age=0: ${c.raw}`);
  assert.equal(c.attrs.path, '/');
}

function assertHtml400(res, what) {
  assert.equal(res.status, 400, `${what}: ${res.status} location=${res.location}`);
  assert.equal(res.location, null, `${what}: never a redirect`);
  assert.match(res.headers.get('content-type') ?? '', /text\/html/, `${what}: HTML`);
}

describe('end_session', { timeout: 120000 }, () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(async () => { await srv?.cleanup(); });

  it('id_token_hint + registered post_logout_redirect_uri → 302 with state; everything from that login is revoked', async () => {
    const l = await login(srv.origin);
    const cookieValue = l.browser.cookie('session');
    // a second code flow from the same browser session (no form)
    const a2 = await authorize(srv.origin, { browser: l.browser, expectForm: false });
    const t2 = (await redeemCode(srv.origin, a2)).json();
    assert.equal(await valid(srv.origin, { bearer: t2.access_token }), 'true');

    const res = await l.browser.go(endSessionUrl(srv.origin, {
      id_token_hint: l.tokens.id_token, post_logout_redirect_uri: DEMO_POST_LOGOUT, state: 'st-1',
    }));
    assertLoggedOutRedirect(res, 'st-1');
    for (const [what, cred] of [
      ['hint session access token', { bearer: l.tokens.access_token }],
      ['sibling session access token', { bearer: t2.access_token }],
      ['browser session cookie', { cookie: `session=${cookieValue}` }],
    ]) {
      assert.equal(await valid(srv.origin, cred), 'false', what);
    }
    for (const rt of [l.tokens.refresh_token, t2.refresh_token]) {
      const r = await refresh(srv.origin, rt);
      assert.equal(r.status, 400, r.text);
      assert.equal(r.json().error, 'invalid_grant');
    }
    for (const [k] of res.headers) assert.ok(!k.startsWith('access-control-'), `no CORS (${k})`);
    // the old cookie no longer skips the login form
    const b = new Browser(srv.origin);
    b.setCookie('session', cookieValue);
    const again = await b.go(new URL(`/oauth2/authorize?${new URLSearchParams({
      response_type: 'code', client_id: 'demo', redirect_uri: 'http://127.0.0.1:4000/callback', scope: 'openid', state: 'y',
      code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGrSstw-cM', code_challenge_method: 'S256',
    })}`, srv.origin).toString());
    assert.equal(again.status, 200, `after logout the form is shown: ${again.status} ${again.location}`);
  });

  it('with client_id and hint but no cookie → still revokes the hint session', async () => {
    const l = await login(srv.origin);
    const res = await req(endSessionUrl(srv.origin, {
      id_token_hint: l.tokens.id_token, client_id: 'demo', post_logout_redirect_uri: DEMO_POST_LOGOUT, state: 's2',
    }));
    assert.equal(res.status, 302, `${res.status} ${res.text.slice(0, 200)}`);
    assert.equal(new URL(res.location).searchParams.get('state'), 's2');
    assert.equal(await valid(srv.origin, { bearer: l.tokens.access_token }), 'false');
    assert.equal(await valid(srv.origin, { cookie: `session=${l.browser.cookie('session')}` }), 'false',
      'the browser session the hint came from is revoked too');
  });

  it('a hint from another login revokes both the hint session and the cookie session', async () => {
    const a = await login(srv.origin); // the browser's own session
    const b = await login(srv.origin); // some other login
    const aCookie = a.browser.cookie('session');
    const res = await a.browser.go(endSessionUrl(srv.origin, {
      id_token_hint: b.tokens.id_token, post_logout_redirect_uri: DEMO_POST_LOGOUT, state: 'x',
    }));
    assertLoggedOutRedirect(res, 'x');
    assert.equal(await valid(srv.origin, { bearer: b.tokens.access_token }), 'false', 'hint session revoked');
    assert.equal(await valid(srv.origin, { cookie: `session=${b.browser.cookie('session')}` }), 'false', "the hint's browser session revoked");
    assert.equal(await valid(srv.origin, { cookie: `session=${aCookie}` }), 'false', 'the cookie session revoked too');
  });

  it('POST works like GET', async () => {
    const l = await login(srv.origin);
    const res = await l.browser.fetch(`${srv.origin}/oauth2/end_session`, {
      method: 'POST', form: { id_token_hint: l.tokens.id_token, post_logout_redirect_uri: DEMO_POST_LOGOUT, state: 'p' },
    });
    assertLoggedOutRedirect(res, 'p');
    assert.equal(await valid(srv.origin, { bearer: l.tokens.access_token }), 'false');
  });

  it('hint without post_logout_redirect_uri → 200 signed-out page', async () => {
    const l = await login(srv.origin);
    const res = await l.browser.go(endSessionUrl(srv.origin, { id_token_hint: l.tokens.id_token }));
    assert.equal(res.status, 200, res.text.slice(0, 200));
    assert.match(res.headers.get('content-type') ?? '', /text\/html/);
    assert.equal(await valid(srv.origin, { bearer: l.tokens.access_token }), 'false');
  });

  it('unregistered post_logout_redirect_uri → 400 HTML, never a redirect', async () => {
    const l = await login(srv.origin);
    const bad = [
      'https://evil.example',
      'https://evil.example/',
      'http://127.0.0.1:4000',
      'http://127.0.0.1:4000/x',
      'http://127.0.0.1:4000/?next=https://evil.example',
      'http://127.0.0.1:4000//evil.example',
      'http://127.0.0.1:4000.evil.example/',
      'http://127.0.0.1:4000@evil.example/',
      'HTTP://127.0.0.1:4000/',
      '//evil.example/',
      'javascript:alert(1)',
      'http://127.0.0.1:4001/', // registered, but for the backend client
    ];
    for (const uri of bad) {
      assertHtml400(await req(endSessionUrl(srv.origin, { id_token_hint: l.tokens.id_token, post_logout_redirect_uri: uri, state: 'x' })),
        `hint + ${uri}`);
      assertHtml400(await req(endSessionUrl(srv.origin, { client_id: 'demo', post_logout_redirect_uri: uri, state: 'x' })),
        `client_id + ${uri}`);
      if (uri !== 'http://127.0.0.1:4001/') {
        assertHtml400(await req(endSessionUrl(srv.origin, { post_logout_redirect_uri: uri })), `bare ${uri}`);
      }
    }
  });

  it('a bare post_logout_redirect_uri registered by some client is accepted (Authgear SDK cookie mode)', async () => {
    const r = await req(endSessionUrl(srv.origin, { post_logout_redirect_uri: DEMO_POST_LOGOUT, state: 'b1' }));
    assert.equal(r.status, 302, r.text.slice(0, 200));
    const to = new URL(r.location);
    assert.equal(`${to.origin}${to.pathname}`, DEMO_POST_LOGOUT);
    assert.equal(to.searchParams.get('state'), 'b1');
  });

  it('without a hint but with a cookie: confirmation page with a form; submitting it logs out', async () => {
    const l = await login(srv.origin);
    const cookieValue = l.browser.cookie('session');
    const page = await l.browser.go(endSessionUrl(srv.origin, { client_id: 'demo', post_logout_redirect_uri: DEMO_POST_LOGOUT, state: 'c1' }));
    assert.equal(page.status, 200, `${page.status} ${page.location}`);
    assert.match(page.headers.get('content-type') ?? '', /text\/html/);
    const forms = parseForms(page.text).filter((f) => f.method === 'post');
    assert.ok(forms.length >= 1, 'a POST form');
    const f = forms[0];
    assert.ok(f.fields.csrf_token, 'hidden csrf_token');
    const names = f.inputs.map((i) => i.name);
    assert.ok(names.includes('confirm'), 'confirm field');
    assert.equal(f.fields.post_logout_redirect_uri ?? f.inputs.find((i) => i.name === 'post_logout_redirect_uri')?.value, DEMO_POST_LOGOUT, 'params carried');
    assert.equal(await valid(srv.origin, { cookie: `session=${cookieValue}` }), 'true', 'not logged out before confirming');
    const res = await l.browser.submit(page, { confirm: 'yes' }, { formIndex: parseForms(page.text).findIndex((x) => x.method === 'post') });
    assertLoggedOutRedirect(res, 'c1');
    assert.equal(await valid(srv.origin, { cookie: `session=${cookieValue}` }), 'false');
    assert.equal(await valid(srv.origin, { bearer: l.tokens.access_token }), 'false', 'sessions created from the browser session die too');
  });

  it('the confirmation form is CSRF-protected: a wrong csrf_token logs nobody out', async () => {
    const l = await login(srv.origin);
    const cookieValue = l.browser.cookie('session');
    const page = await l.browser.go(endSessionUrl(srv.origin, { client_id: 'demo', post_logout_redirect_uri: DEMO_POST_LOGOUT }));
    assert.equal(page.status, 200);
    const idx = parseForms(page.text).findIndex((x) => x.method === 'post');
    const res = await l.browser.submit(page, { confirm: 'yes', csrf_token: 'forged' }, { formIndex: idx });
    assert.equal(res.status, 400, `forged csrf: ${res.status} ${res.location}`);
    assert.equal(res.location, null);
    assert.equal(await valid(srv.origin, { cookie: `session=${cookieValue}` }), 'true', 'still logged in');
    // a cross-site POST without the csrf token at all
    const xs = await req(`${srv.origin}/oauth2/end_session`, { method: 'POST', cookie: `session=${cookieValue}`, form: { confirm: 'yes', client_id: 'demo', post_logout_redirect_uri: DEMO_POST_LOGOUT } });
    assert.notEqual(xs.status, 302, `POST without csrf must not log out and redirect: ${xs.status}`);
    assert.equal(await valid(srv.origin, { cookie: `session=${cookieValue}` }), 'true', 'still logged in after a csrf-less POST');
  });

  it('confirmation without a redirect URI ends on a signed-out page', async () => {
    const l = await login(srv.origin);
    const cookieValue = l.browser.cookie('session');
    const page = await l.browser.go(endSessionUrl(srv.origin, {}));
    assert.equal(page.status, 200);
    const idx = parseForms(page.text).findIndex((x) => x.method === 'post');
    assert.ok(idx >= 0, 'confirmation form');
    const res = await l.browser.submit(page, { confirm: 'yes' }, { formIndex: idx });
    assert.equal(res.status, 200, `${res.status} ${res.location}`);
    assert.equal(await valid(srv.origin, { cookie: `session=${cookieValue}` }), 'false');
  });

  it('a forged or foreign id_token_hint revokes nothing', async () => {
    const l = await login(srv.origin);
    const { header, payload } = decodeJwt(l.tokens.id_token);
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const forged = signJwt(header, payload, privateKey);
    // no cookie: nothing to log out; the forged hint must not revoke the victim's session
    const r = await req(endSessionUrl(srv.origin, { id_token_hint: forged, post_logout_redirect_uri: DEMO_POST_LOGOUT, client_id: 'demo', state: 'f' }));
    assert.ok(r.status === 302 || r.status === 200 || r.status === 400, `forged hint: ${r.status}`);
    assert.equal(await valid(srv.origin, { bearer: l.tokens.access_token }), 'true', 'forged hint revoked nothing');
    const none = await req(endSessionUrl(srv.origin, { id_token_hint: signJwt({ ...header, alg: 'none' }, payload), post_logout_redirect_uri: DEMO_POST_LOGOUT, client_id: 'demo' }));
    assert.ok(none.status < 500);
    assert.equal(await valid(srv.origin, { bearer: l.tokens.access_token }), 'true', 'alg none hint revoked nothing');
    // with the cookie, a forged hint is "no valid hint": the confirmation page, not a silent logout
    const page = await l.browser.go(endSessionUrl(srv.origin, { id_token_hint: forged, post_logout_redirect_uri: DEMO_POST_LOGOUT, client_id: 'demo' }));
    assert.equal(page.status, 200, `forged hint + cookie: ${page.status} ${page.location}`);
    assert.ok(parseForms(page.text).some((f) => f.method === 'post'), 'confirmation form');
    assert.equal(await valid(srv.origin, { cookie: `session=${l.browser.cookie('session')}` }), 'true');
  });

  it('without any session: redirect directly (registered URI) or a page', async () => {
    const r1 = await req(endSessionUrl(srv.origin, { client_id: 'demo', post_logout_redirect_uri: DEMO_POST_LOGOUT, state: 'n' }));
    assert.equal(r1.status, 302, `${r1.status} ${r1.text.slice(0, 200)}`);
    const u = new URL(r1.location);
    assert.equal(`${u.origin}${u.pathname}`, DEMO_POST_LOGOUT);
    assert.equal(u.searchParams.get('state'), 'n');
    const r2 = await req(endSessionUrl(srv.origin, {}));
    assert.equal(r2.status, 200);
    assert.match(r2.headers.get('content-type') ?? '', /text\/html/);
  });
});
