// The login page at /oauth2/authorize: form, CSRF, headers, cookies, prompt /
// max_age / login_hint handling, response_type=none, and request errors that
// must never redirect.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, baseConfig, demoClient, backendClient, Browser, req, authorizeUrl, pkce, randomString, parseForm,
  parseSetCookie, parseForms, isClearing, decodeJwt, login, DEMO_REDIRECT, DEMO_REDIRECT_LOCALHOST, DEFAULT_PASSWORD, redeemCode, resolve, runCli, sleep, authorize,
} from './harness.mjs';

const MSG = 'Incorrect username or password.';

function params(extra = {}) {
  const { challenge } = pkce();
  return {
    response_type: 'code',
    client_id: 'demo',
    redirect_uri: DEMO_REDIRECT,
    scope: 'openid offline_access',
    state: randomString(),
    nonce: randomString(),
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...extra,
  };
}

function cookieNamed(res, name) {
  return res.setCookies.map(parseSetCookie).find((c) => c.name === name);
}

function assertHtmlError(res, what) {
  assert.equal(res.status, 400, `${what}: status ${res.status} location=${res.location} body=${res.text.slice(0, 200)}`);
  assert.equal(res.location, null, `${what}: must not redirect (Location ${res.location})`);
  assert.match(res.headers.get('content-type') ?? '', /text\/html/, `${what}: HTML error page`);
}

function assertErrorRedirect(res, p, error, origin) {
  assert.equal(res.status, 302, `expected redirect with error=${error}, got ${res.status} ${res.text.slice(0, 200)}`);
  const u = new URL(res.location);
  assert.equal(`${u.origin}${u.pathname}`, p.redirect_uri);
  assert.equal(u.searchParams.get('error'), error);
  assert.equal(u.searchParams.get('state'), p.state, 'state echoed');
  assert.equal(u.searchParams.get('iss'), origin, 'iss present');
  assert.equal(u.searchParams.get('code'), null, 'no code on error');
  assert.ok(u.searchParams.has('error_description'), 'error_description present');
}

describe('login page', { timeout: 120000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({ users: [{ username: 'alice' }, { username: 'dave' }] });
    const r = await runCli(['users', 'disable', '--data-dir', srv.dataDir, '--username', 'dave', '--reason', 'test']);
    assert.equal(r.code, 0, `users disable: ${r.stderr}`);
  });
  after(async () => { await srv?.cleanup(); });

  it('renders the form with all fields, a csrf cookie, and security headers', async () => {
    const b = new Browser(srv.origin);
    const p = params();
    const res = await b.fetch(authorizeUrl(srv.origin, p), { origin: 'http://127.0.0.1:4000' });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/html/);
    assert.match(res.text, /<form[^>]*method=["']?post["']?[^>]*>/i);
    assert.match(res.text, /<form[^>]*action=["']\/oauth2\/authorize["'][^>]*>/i);
    const form = parseForm(res.text);
    assert.equal(form.method, 'post');
    assert.equal(form.action, '/oauth2/authorize');
    const byName = Object.fromEntries(form.inputs.filter((i) => i.name).map((i) => [i.name, i]));
    assert.ok(byName.username, 'username input');
    assert.ok(byName.password, 'password input');
    assert.equal(byName.password.type, 'password');
    assert.ok(byName.csrf_token, 'csrf_token input');
    assert.equal(byName.csrf_token.type, 'hidden');
    for (const k of Object.keys(p)) {
      assert.ok(byName[k], `authorize parameter ${k} is carried as an input`);
      assert.equal(byName[k].type, 'hidden', `${k} is hidden`);
      assert.equal(byName[k].value, p[k], `${k} value`);
    }
    const csrf = cookieNamed(res, 'csrf');
    assert.ok(csrf, `csrf cookie set (Set-Cookie: ${JSON.stringify(res.setCookies)})`);
    assert.equal(csrf.attrs.httponly, true, 'csrf HttpOnly');
    assert.equal(String(csrf.attrs.samesite).toLowerCase(), 'lax', 'csrf SameSite=Lax');
    assert.equal(csrf.attrs.path, '/oauth2', 'csrf Path=/oauth2');
    assert.equal(csrf.attrs.domain, undefined, 'csrf cookie is host-only');
    assert.equal(byName.csrf_token.value, csrf.value, 'csrf_token equals the csrf cookie');
    assert.match(res.headers.get('cache-control') ?? '', /no-store/);
    assert.equal(res.headers.get('x-frame-options'), 'DENY');
    assert.match(res.headers.get('content-security-policy') ?? '', /frame-ancestors 'none'/);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    for (const [k] of res.headers) assert.ok(!k.toLowerCase().startsWith('access-control-'), `no CORS header on authorize (${k})`);
  });

  it('POST /oauth2/authorize with only the authorize parameters shows the login form', async () => {
    const p = params();
    const res = await req(`${srv.origin}/oauth2/authorize`, { method: 'POST', form: p });
    assert.equal(res.status, 200, `${res.status} ${res.location}`);
    const form = parseForm(res.text);
    assert.equal(form.fields.state, p.state);
    assert.ok(form.fields.csrf_token);
  });

  it('wrong password, unknown user and disabled user all re-show the form with the same message', async () => {
    const pages = [];
    for (const [username, password] of [['alice', 'wrong password'], ['nobody', DEFAULT_PASSWORD], ['dave', DEFAULT_PASSWORD]]) {
      const b = new Browser(srv.origin);
      const page = await b.go(authorizeUrl(srv.origin, params()));
      assert.equal(page.status, 200);
      const res = await b.submit(page, { username, password });
      assert.equal(res.status, 200, `${username}: ${res.status} ${res.location}`);
      assert.ok(res.text.includes(MSG) || res.text.includes(MSG.replace('.', '')),
        `${username}: page shows "${MSG}"`);
      assert.ok(res.text.includes(MSG), `${username}: exact message "${MSG}"`);
      const form = parseForm(res.text);
      assert.ok(form.fields.csrf_token !== undefined, `${username}: form shown again`);
      assert.equal(cookieNamed(res, 'session'), undefined, `${username}: no session cookie`);
      assert.equal(b.cookie('session'), undefined);
      pages.push(res.text);
    }
  });

  it('tampered hidden fields on the login form: an unregistered redirect_uri → 400, never a redirect', async () => {
    for (const evil of ['https://evil.example/callback', 'http://127.0.0.1:4000/callback/../evil']) {
      const b = new Browser(srv.origin);
      const page = await b.go(authorizeUrl(srv.origin, params()));
      const res = await b.submit(page, { username: 'alice', password: DEFAULT_PASSWORD, redirect_uri: evil });
      assert.equal(res.status, 400, `${evil}: ${res.status} ${res.location}`);
      assert.equal(res.location, null);
      const c = cookieNamed(res, 'session');
      assert.equal(c, undefined, `${evil}: no session for a rejected request`);
    }
  });

  it('POST with a wrong or missing csrf token → 400', async () => {
    for (const variant of ['wrong', 'missing-field', 'missing-cookie']) {
      const b = new Browser(srv.origin);
      const page = await b.go(authorizeUrl(srv.origin, params()));
      assert.equal(page.status, 200);
      const form = parseForm(page.text);
      const fields = { ...form.fields, username: 'alice', password: DEFAULT_PASSWORD };
      if (variant === 'wrong') fields.csrf_token = `${fields.csrf_token}x`;
      if (variant === 'missing-field') delete fields.csrf_token;
      if (variant === 'missing-cookie') b.jar.delete('csrf');
      const res = await b.fetch(`${srv.origin}/oauth2/authorize`, { method: 'POST', form: fields });
      assert.equal(res.status, 400, `${variant}: ${res.status} ${res.location}`);
      assert.equal(res.location, null, `${variant}: no redirect`);
      assert.match(res.headers.get('content-type') ?? '', /text\/html/);
      assert.equal(cookieNamed(res, 'session'), undefined, `${variant}: no session`);
    }
  });

  it('successful login sets the session cookie with the right attributes', async () => {
    const b = new Browser(srv.origin);
    const page = await b.go(authorizeUrl(srv.origin, params()));
    const res = await b.submit(page, { username: 'alice', password: DEFAULT_PASSWORD });
    assert.equal(res.status, 302);
    const c = cookieNamed(res, 'session');
    assert.ok(c, `session cookie set: ${JSON.stringify(res.setCookies)}`);
    assert.match(c.value, /^[^.]+\.[A-Za-z0-9]{32}$/, 'session cookie is <id>.<32 alnum>');
    assert.equal(c.attrs.path, '/');
    assert.equal(c.attrs.httponly, true);
    assert.equal(String(c.attrs.samesite).toLowerCase(), 'lax');
    assert.equal(c.attrs.secure, undefined, 'no Secure on an http origin');
    assert.equal(c.attrs.domain, undefined, 'no Domain without cookie_domain');
    assert.equal(c.attrs['max-age'], '31449600', 'Max-Age = session.lifetime_seconds');
    const r = await resolve(srv.origin, { cookie: `session=${c.value}` });
    assert.equal(r.ag['x-authgear-session-valid'], 'true');
  });

  it('a second login gets a different session (fixation defence), even with a session cookie present', async () => {
    const b = new Browser(srv.origin);
    await authorize(srv.origin, { browser: b });
    const first = b.cookie('session');
    assert.ok(first);
    const page = await b.go(authorizeUrl(srv.origin, params({ prompt: 'login' })));
    assert.equal(page.status, 200);
    const res = await b.submit(page, { username: 'alice', password: DEFAULT_PASSWORD });
    assert.equal(res.status, 302);
    const second = b.cookie('session');
    assert.ok(second);
    assert.notEqual(second.split('.')[0], first.split('.')[0], 'new session id');
    // a fresh browser's logins differ too
    const b2 = new Browser(srv.origin);
    await authorize(srv.origin, { browser: b2 });
    assert.notEqual(b2.cookie('session').split('.')[0], second.split('.')[0]);
  });

  it('a valid session cookie skips the form and the code works', async () => {
    const b = new Browser(srv.origin);
    await authorize(srv.origin, { browser: b });
    const a2 = await authorize(srv.origin, { browser: b, expectForm: false });
    assert.equal(a2.response.status, 302);
    assert.equal(a2.callback.searchParams.get('state'), a2.state);
    assert.equal(a2.callback.searchParams.get('iss'), srv.origin);
    const t = await redeemCode(srv.origin, a2);
    assert.equal(t.status, 200, t.text);
    // prompt=none with a session also gives a code
    const a3 = await authorize(srv.origin, { browser: b, expectForm: false, extra: { prompt: 'none' } });
    assert.ok(a3.code);
    // max_age generous: no form
    const a4 = await authorize(srv.origin, { browser: b, expectForm: false, extra: { max_age: '3600' } });
    assert.ok(a4.code);
  });

  it('SSO via the cookie keeps the original auth_time and uses the new nonce', async () => {
    const l = await login(srv.origin);
    const t1 = decodeJwt(l.tokens.id_token).payload;
    await sleep(1500);
    const a2 = await authorize(srv.origin, { browser: l.browser, expectForm: false });
    const r = await redeemCode(srv.origin, a2);
    assert.equal(r.status, 200, r.text);
    const t2 = decodeJwt(r.json().id_token).payload;
    assert.equal(t2.nonce, a2.nonce, 'new nonce');
    assert.equal(t2.auth_time, t1.auth_time, 'auth_time is the time of the login, not of the SSO');
    assert.ok(t2.iat >= t1.iat + 1, 'iat is fresh');
    assert.equal(decodeJwt(r.json().access_token).payload.auth_time, t1.auth_time);
    assert.notEqual(t2.sid, t1.sid, 'each code exchange is its own session');
  });

  it('prompt=none with a session but max_age exceeded → error=login_required (no UI, no code)', async () => {
    const b = new Browser(srv.origin);
    await authorize(srv.origin, { browser: b });
    await sleep(1100);
    const p = params({ prompt: 'none', max_age: '0' });
    assertErrorRedirect(await b.fetch(authorizeUrl(srv.origin, p)), p, 'login_required', srv.origin);
  });

  it('prompt=login and max_age=0 force the form despite a session', async () => {
    const b = new Browser(srv.origin);
    await authorize(srv.origin, { browser: b });
    for (const extra of [{ prompt: 'login' }, { max_age: '0' }]) {
      const res = await b.go(authorizeUrl(srv.origin, params(extra)));
      assert.equal(res.status, 200, `${JSON.stringify(extra)}: ${res.status} ${res.location}`);
      assert.ok(parseForm(res.text).fields.csrf_token !== undefined, 'login form shown');
    }
  });

  it('max_age exceeded forces the form', async () => {
    const b = new Browser(srv.origin);
    await authorize(srv.origin, { browser: b });
    await sleep(2200);
    const res = await b.go(authorizeUrl(srv.origin, params({ max_age: '1' })));
    assert.equal(res.status, 200, `max_age=1 after 2 s: ${res.status} ${res.location}`);
    assert.ok(parseForm(res.text).fields.csrf_token !== undefined);
  });

  it('prompt=none without a session redirects with error=login_required', async () => {
    const p = params({ prompt: 'none' });
    const res = await req(authorizeUrl(srv.origin, p));
    assertErrorRedirect(res, p, 'login_required', srv.origin);
  });

  it('state and other parameters are encoded, never injected (redirect and HTML)', async () => {
    const evilState = 'a&code=evil&iss=https://evil.example#frag"><script>alert(1)</script>';
    const a = await authorize(srv.origin, { extra: { state: evilState } });
    assert.equal(a.callback.searchParams.get('state'), evilState, 'state round-trips exactly');
    assert.equal(a.callback.searchParams.getAll('code').length, 1, 'one code parameter');
    assert.notEqual(a.callback.searchParams.get('code'), 'evil');
    assert.deepEqual(a.callback.searchParams.getAll('iss'), [srv.origin], 'one iss parameter, ours');
    assert.equal(a.callback.hash, '', 'no fragment injected');
    const xss = '"><script>alert(1)</script><input name="x" value="';
    const page = await req(authorizeUrl(srv.origin, params({ login_hint: xss, state: xss, nonce: xss })));
    assert.equal(page.status, 200);
    assert.ok(!page.text.includes('<script>alert(1)</script>'), 'parameters are HTML-escaped on the login page');
    const form = parseForm(page.text);
    assert.equal(form.fields.username, xss, 'login_hint value survives escaping');
    assert.equal(form.fields.state, xss);
    assert.ok(!form.inputs.some((i) => i.name === 'x'), 'no injected input');
    const err = await req(authorizeUrl(srv.origin, params({ client_id: '<script>alert(1)</script>' })));
    assert.equal(err.status, 400);
    assert.ok(!err.text.includes('<script>alert(1)</script>'), 'error page escapes the client_id');
  });

  it('login_hint prefills the username', async () => {
    const res = await req(authorizeUrl(srv.origin, params({ login_hint: 'alice@example.com' })));
    assert.equal(res.status, 200);
    const form = parseForm(res.text);
    assert.equal(form.fields.username, 'alice@example.com');
  });

  it('response_type=none sets the cookie and redirects with state only', async () => {
    const b = new Browser(srv.origin);
    const p = params({ response_type: 'none' });
    delete p.nonce;
    const page = await b.go(authorizeUrl(srv.origin, p));
    assert.equal(page.status, 200);
    const res = await b.submit(page, { username: 'alice', password: DEFAULT_PASSWORD });
    assert.equal(res.status, 302, `${res.status} ${res.text.slice(0, 200)}`);
    const u = new URL(res.location);
    assert.equal(`${u.origin}${u.pathname}`, DEMO_REDIRECT);
    assert.equal(u.searchParams.get('state'), p.state);
    assert.equal(u.searchParams.get('iss'), srv.origin);
    assert.equal(u.searchParams.get('code'), null, 'no code for response_type=none');
    assert.ok(b.cookie('session'), 'session cookie set');
    const r = await resolve(srv.origin, { cookie: `session=${b.cookie('session')}` });
    assert.equal(r.ag['x-authgear-session-valid'], 'true');
  });

  it('unknown client, missing or unregistered redirect_uri → 400 HTML, never a redirect', async () => {
    const cases = [
      ['unknown client', params({ client_id: 'nope' })],
      ['missing client_id', params({ client_id: undefined })],
      ['missing redirect_uri', params({ redirect_uri: undefined })],
    ];
    const variants = [
      'https://evil.example/callback',
      'http://127.0.0.1:4000/callback/',
      'http://127.0.0.1:4000/callbackx',
      'http://127.0.0.1:4000/callbac',
      'http://127.0.0.1:4000/',
      'http://127.0.0.1:4000',
      'http://127.0.0.1:4000/CALLBACK',
      'HTTP://127.0.0.1:4000/callback',
      'http://127.0.0.1:4000/callback?x=1',
      'http://127.0.0.1:4000/callback#frag',
      'http://127.0.0.1:40000/callback',
      'http://127.0.0.1:4000/callback/../callback',
      'http://127.0.0.1:4000.evil.example/callback',
      'http://127.0.0.1:4000@evil.example/callback',
      ' http://127.0.0.1:4000/callback',
      'http://127.0.0.1:4001/callback', // registered for another client
    ];
    for (const v of variants) cases.push([`redirect_uri ${JSON.stringify(v)}`, params({ redirect_uri: v })]);
    for (const [what, p] of cases) {
      const res = await req(authorizeUrl(srv.origin, p));
      assertHtmlError(res, `GET ${what}`);
      const post = await req(`${srv.origin}/oauth2/authorize`, {
        method: 'POST', form: Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)),
      });
      assertHtmlError(post, `POST ${what}`);
    }
  });

  it('the other registered redirect_uri works', async () => {
    const a = await authorize(srv.origin, { redirectUri: DEMO_REDIRECT_LOCALHOST });
    assert.equal(`${a.callback.origin}${a.callback.pathname}`, DEMO_REDIRECT_LOCALHOST);
  });

  it('public client without code_challenge or with method plain → error=invalid_request redirect', async () => {
    const p1 = params();
    delete p1.code_challenge;
    delete p1.code_challenge_method;
    assertErrorRedirect(await req(authorizeUrl(srv.origin, p1)), p1, 'invalid_request', srv.origin);
    const p2 = params({ code_challenge_method: 'plain' });
    assertErrorRedirect(await req(authorizeUrl(srv.origin, p2)), p2, 'invalid_request', srv.origin);
    const p3 = params();
    delete p3.code_challenge_method; // defaults to plain per RFC 7636
    assertErrorRedirect(await req(authorizeUrl(srv.origin, p3)), p3, 'invalid_request', srv.origin);
  });

  it('unsupported response_type and scope without openid are redirected errors', async () => {
    const p1 = params({ response_type: 'token' });
    assertErrorRedirect(await req(authorizeUrl(srv.origin, p1)), p1, 'unsupported_response_type', srv.origin);
    const p2 = params({ scope: 'offline_access' });
    assertErrorRedirect(await req(authorizeUrl(srv.origin, p2)), p2, 'invalid_scope', srv.origin);
  });
});

describe('cookie prefix and cookie domain', { timeout: 60000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({
      // cookie_domain must be the public origin's host or a parent of it, so the
      // public origin is a name under example.test (requests still go to 127.0.0.1).
      config: () => baseConfig('http://id.example.test', {
        http: { cookie_prefix: 'lk_', cookie_domain: 'example.test' }, session: { lifetime_seconds: 86400 },
        ui: { product_name: 'Acme & Co <b>bold</b>' },
      }),
    });
  });
  after(async () => { await srv?.cleanup(); });

  it('ui.product_name is shown on the login page (escaped)', async () => {
    const page = await req(authorizeUrl(srv.origin, params()));
    assert.equal(page.status, 200);
    assert.ok(page.text.includes('Acme &amp; Co') || page.text.includes('Acme &#38; Co'), 'product name shown, HTML-escaped');
    assert.ok(!page.text.includes('<b>bold</b>'), 'product name is escaped');
  });

  it('uses <prefix>csrf (host-only) and <prefix>session with Domain', async () => {
    const b = new Browser(srv.origin);
    const page = await b.fetch(authorizeUrl(srv.origin, params()));
    assert.equal(page.status, 200);
    const csrf = cookieNamed(page, 'lk_csrf');
    assert.ok(csrf, `lk_csrf cookie: ${JSON.stringify(page.setCookies)}`);
    assert.equal(csrf.attrs.domain, undefined, 'csrf cookie stays host-only');
    assert.equal(csrf.attrs.path, '/oauth2');
    assert.equal(cookieNamed(page, 'csrf'), undefined, 'no unprefixed csrf cookie');
    const res = await b.submit(page, { username: 'alice', password: DEFAULT_PASSWORD });
    assert.equal(res.status, 302, `${res.status} ${res.text.slice(0, 200)}`);
    const c = cookieNamed(res, 'lk_session');
    assert.ok(c, `lk_session cookie: ${JSON.stringify(res.setCookies)}`);
    assert.equal(cookieNamed(res, 'session'), undefined, 'no unprefixed session cookie');
    assert.equal(String(c.attrs.domain).replace(/^\./, ''), 'example.test', 'Domain=cookie_domain');
    assert.equal(c.attrs.path, '/');
    assert.equal(c.attrs.httponly, true);
    assert.equal(String(c.attrs.samesite).toLowerCase(), 'lax');
    assert.equal(c.attrs['max-age'], '86400', 'Max-Age = session.lifetime_seconds');
    const ok = await resolve(srv.origin, { cookie: `lk_session=${c.value}` });
    assert.equal(ok.ag['x-authgear-session-valid'], 'true', 'the prefixed cookie is the session cookie');
    const other = await resolve(srv.origin, { cookie: `session=${c.value}` });
    assert.deepEqual(other.ag, {}, 'the unprefixed name is not a credential');
    // clearing a Domain cookie only works with the same Domain (and Path)
    const bad = await resolve(srv.origin, { cookie: 'lk_session=bogus.bogus' });
    assert.equal(bad.ag['x-authgear-session-valid'], 'false');
    const cleared = bad.setCookies.map(parseSetCookie).find((x) => x.name === 'lk_session');
    assert.ok(cleared && isClearing(cleared), `resolver clears lk_session: ${JSON.stringify(bad.setCookies)}`);
    assert.equal(String(cleared.attrs.domain ?? '').replace(/^\./, ''), 'example.test', `resolver's clearing cookie has the Domain: ${cleared.raw}`);
    assert.equal(cleared.attrs.path, '/');
    // logging out clears it with the Domain too
    const out = await b.go(`${srv.origin}/oauth2/end_session?${new URLSearchParams({ id_token_hint: '', client_id: 'demo' })}`);
    assert.equal(out.status, 200, `end_session with the cookie: ${out.status}`);
    const idx = parseForms(out.text).findIndex((f) => f.method === 'post');
    assert.ok(idx >= 0, 'confirmation form');
    const done = await b.submit(out, { confirm: 'yes' }, { formIndex: idx });
    const gone = done.setCookies.map(parseSetCookie).find((x) => x.name === 'lk_session');
    assert.ok(gone && isClearing(gone), `logout clears lk_session: ${JSON.stringify(done.setCookies)}`);
    assert.equal(String(gone.attrs.domain ?? '').replace(/^\./, ''), 'example.test', `logout's clearing cookie has the Domain: ${gone.raw}`);
    assert.equal((await resolve(srv.origin, { cookie: `lk_session=${c.value}` })).ag['x-authgear-session-valid'], 'false');
  });
});

describe('https public origin', { timeout: 60000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({
      config: (o) => baseConfig('https://id.example.test', { clients: [demoClient(), backendClient()] }),
    });
  });
  after(async () => { await srv?.cleanup(); });

  it('session cookie gets Secure, iss is the https origin', async () => {
    const b = new Browser(srv.origin);
    const p = params();
    const page = await b.go(authorizeUrl(srv.origin, p));
    assert.equal(page.status, 200);
    const res = await b.submit(page, { username: 'alice', password: DEFAULT_PASSWORD });
    assert.equal(res.status, 302);
    const c = cookieNamed(res, 'session');
    assert.ok(c);
    assert.equal(c.attrs.secure, true, 'Secure on an https public origin');
    assert.equal(new URL(res.location).searchParams.get('iss'), 'https://id.example.test');
  });
});
