// Authgear's JavaScript SDK (@authgear/web, the client Authgear's SPA guide recommends)
// against Latchkey, in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core). The example app examples/spa/ is served on http://127.0.0.1:4000,
// the origin of the demo client's redirect URI; it loads the SDK's ES module build from
// node_modules and writes what the SDK reports into the page. The flow, in the SDK's
// default "refresh_token" session type:
//   configure -> startAuthentication (redirect, PKCE S256) -> Latchkey's login page ->
//   finishAuthentication (code exchange + userinfo) -> fetchUserInfo -> fetch (the app's
//   API, which asks the resolver) -> reload + refreshAccessTokenIfNeeded (refresh grant)
//   -> logout (revocation), after which the old access tokens resolve Session-Valid false;
// and an expired access token refreshed by fetchUserInfo on its own.
// What the SDK offers beyond that and Latchkey lacks is listed in examples/spa/README.md.
//
// If Chromium is missing or does not start, or port 4000 is taken, the before hook
// fails and so does every test here: nothing is skipped.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { launchChromium } from './lib/browser.mjs';
import {
  startServer, baseConfig, demoClient, backendClient, decodeJwt, resolve, refresh, sleep, DEMO_REDIRECT, DEFAULT_PASSWORD,
} from './harness.mjs';
import { startSpaServer } from '../../examples/spa/server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = path.join(HERE, 'artifacts');
const SPA_PORT = 4000; // the demo client's redirect URI is http://127.0.0.1:4000/callback
const SDK_VERSION = '6.0.0'; // pinned in package.json
const RT_KEY = 'authgear_default_refreshToken'; // where the SDK keeps the refresh token (localStorage)
const SHORT_LIFETIME = 2;

describe('Authgear Web SDK against Latchkey in headless Chromium', { timeout: 180000 }, () => {
  let srv;
  let spa;
  let browser;
  let page;
  const pageErrors = [];
  const log = []; // every request to Latchkey: {method, path, query, form, bearer, status}
  const urls = []; // every request the browser made

  const onLatchkey = (url) => url.startsWith(`${srv.origin}/`);
  const calls = (p, since = 0) => log.slice(since).filter((r) => r.path === p);
  const text = async (id) => ((await page.locator(`#${id}`).textContent()) ?? '').trim();
  const storedRefreshToken = () => page.evaluate((k) => localStorage.getItem(k), RT_KEY);

  /** Wait until #last-action says that `name` finished; fail with the SPA's error text if it failed. */
  async function finished(name, after = 0) {
    await page.waitForFunction(([n, a]) => {
      const m = /^(\d+) (\S+) (ok|failed)$/.exec(document.getElementById('last-action')?.textContent ?? '');
      return m && m[2] === n && Number(m[1]) > a;
    }, [name, after], { timeout: 15000 }).catch(async (e) => {
      throw new Error(`${name} did not finish: last action "${await text('last-action')}", error "${await text('error')}" (${e.message})`);
    });
    const last = await text('last-action');
    if (last.endsWith(' failed')) assert.fail(`${name} failed in the SDK: ${await text('error')}`);
  }

  /** Click one of the SPA's buttons and wait for its action to finish. */
  async function act(button, name = button) {
    const seq = Number((await text('last-action')).split(' ')[0]) || 0;
    await page.click(`#${button}`);
    await finished(name, seq);
  }

  async function openSpa() {
    await page.goto(`${spa.origin}/`);
    await page.waitForFunction(() => document.getElementById('ready')?.textContent !== 'no');
    assert.equal(await text('ready'), 'yes', `the SPA started: ${await text('error')}`);
  }

  /** Log in through the SDK and our login form; returns the authorize request's URL. */
  async function logIn(username = 'alice') {
    const [authorizeReq] = await Promise.all([
      page.waitForRequest((r) => r.url().startsWith(`${srv.origin}/oauth2/authorize?`)),
      page.click('#login'),
    ]);
    await page.waitForSelector('#username');
    assert.equal(new URL(page.url()).origin, srv.origin, 'on the login page');
    await page.fill('#username', username);
    await page.fill('#password', DEFAULT_PASSWORD);
    await page.click('button[type=submit]');
    await page.waitForURL((u) => u.origin === spa.origin);
    await finished('finishAuthentication');
    return new URL(authorizeReq.url());
  }

  before(async () => {
    srv = await startServer({
      config: (o) => baseConfig(o, {
        clients: [
          demoClient(),
          demoClient({ client_id: 'demo-short', name: 'Demo app, short tokens', access_token_lifetime_seconds: SHORT_LIFETIME }),
          backendClient(),
        ],
      }),
    });
    spa = await startSpaServer({ port: SPA_PORT, endpoint: srv.origin, clientID: 'demo' });
    assert.equal(`${spa.origin}/callback`, DEMO_REDIRECT);
    browser = await launchChromium({ viewport: { width: 1100, height: 900 } });
    const ctx = browser.context;
    ctx.on('request', (r) => {
      urls.push(r.url());
      if (!onLatchkey(r.url())) return;
      const u = new URL(r.url());
      const entry = {
        method: r.method(),
        path: u.pathname,
        query: Object.fromEntries(u.searchParams),
        form: r.postData() && /x-www-form-urlencoded/.test(r.headers()['content-type'] ?? '')
          ? Object.fromEntries(new URLSearchParams(r.postData())) : undefined,
        bearer: /^Bearer /.test(r.headers().authorization ?? '') ? r.headers().authorization.slice(7) : undefined,
        status: undefined,
      };
      log.push(entry);
      r.response().then((res) => { entry.status = res?.status(); }).catch(() => {});
    });
    page = ctx.pages()[0] ?? await ctx.newPage();
    page.on('pageerror', (e) => pageErrors.push(String(e)));
  });

  after(async () => {
    // The protocol as the SDK spoke it, for the record (secrets shortened).
    try {
      const short = (v) => (typeof v === 'string' && v.length > 24 ? `${v.slice(0, 12)}…` : v);
      const shorten = (o) => (o ? Object.fromEntries(Object.entries(o).map(([k, v]) => [k, k === 'password' ? '(redacted)' : short(v)])) : o);
      await mkdir(ARTIFACTS, { recursive: true });
      await writeFile(path.join(ARTIFACTS, '41-authgear-sdk-requests.json'), JSON.stringify(
        log.map((r) => ({ ...r, query: shorten(r.query), form: shorten(r.form), bearer: short(r.bearer) })), null, 2));
    } catch { /* best effort */ }
    if (browser) {
      await browser.context.close().catch(() => {});
      await rm(browser.dir, { recursive: true, force: true });
    }
    await spa?.close();
    await srv?.cleanup();
  });

  const state = {}; // carried between the steps of the flow

  it('configure: the SPA loads the SDK module and starts without a session', async () => {
    await openSpa();
    assert.equal(await text('sdk-version'), SDK_VERSION);
    assert.equal(await text('endpoint'), srv.origin);
    assert.equal(await text('session-state'), 'NO_SESSION');
    assert.equal(log.length, 0, `configure makes no request: ${JSON.stringify(log)}`);
    assert.deepEqual(pageErrors, []);
  });

  it('startAuthentication -> login page -> finishAuthentication: the SDK reports the harness user id', async (t) => {
    const since = log.length;
    const authorize = await logIn('alice');
    // What the SDK asked for: code flow with PKCE S256 for the demo client, plus its x_* extras.
    const q = Object.fromEntries(authorize.searchParams);
    assert.equal(q.response_type, 'code');
    assert.equal(q.client_id, 'demo');
    assert.equal(q.redirect_uri, DEMO_REDIRECT);
    assert.equal(q.code_challenge_method, 'S256');
    assert.match(q.code_challenge, /^[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(q.scope.split(' ').sort(), ['https://authgear.com/scopes/full-access', 'offline_access', 'openid'].sort());
    assert.match(q.state, /^spa-/);
    t.diagnostic(`authorize parameters: ${Object.keys(q).join(', ')}`);
    // The code exchange and the userinfo call finishAuthentication made.
    const [exchange] = calls('/oauth2/token', since);
    assert.ok(exchange, 'a token request');
    assert.equal(exchange.form.grant_type, 'authorization_code');
    assert.equal(exchange.form.client_id, 'demo');
    assert.equal(exchange.form.redirect_uri, DEMO_REDIRECT);
    assert.match(exchange.form.code_verifier, /^[A-Za-z0-9_-]{43,128}$/);
    assert.equal(exchange.status, 200);
    const [info] = calls('/oauth2/userinfo', since);
    assert.ok(info?.bearer, 'userinfo with the new access token');
    assert.equal(info.status, 200);
    // What the SDK reports.
    assert.equal(await text('user-id'), srv.userIds.alice, 'the SDK reports the user id');
    assert.match(await text('returned-state'), /\(matches\)$/, 'state round trip');
    assert.equal(await text('session-state'), 'AUTHENTICATED');
    assert.equal(new URL(page.url()).pathname, '/', 'the SPA cleaned up the callback URL');
    const at = await text('access-token');
    const claims = decodeJwt(at).payload;
    assert.equal(claims.sub, srv.userIds.alice);
    assert.equal(claims.client_id, 'demo');
    const rt = await storedRefreshToken();
    assert.ok(rt, 'the SDK stored a refresh token');
    const r = await resolve(srv.origin, { bearer: at });
    assert.equal(r.ag['x-authgear-session-valid'], 'true');
    assert.equal(r.ag['x-authgear-user-id'], srv.userIds.alice);
    Object.assign(state, { at1: at, rt1: rt });
    await mkdir(path.join(ARTIFACTS, 'screenshots'), { recursive: true });
    const file = path.join(ARTIFACTS, 'screenshots', '41-authgear-sdk-signed-in.png');
    await page.screenshot({ path: file, fullPage: true });
    t.diagnostic(`screenshot: ${file}`);
    assert.deepEqual(pageErrors, []);
  });

  it('fetchUserInfo: Authgear claims decoded by the SDK', async () => {
    const since = log.length;
    await act('userinfo');
    assert.equal(await text('user-id'), srv.userIds.alice);
    assert.equal(await text('user-verified'), 'false');
    assert.equal(await text('user-anonymous'), 'false');
    assert.equal(await text('user-can-reauthenticate'), 'true');
    assert.equal(await text('user-roles'), '');
    const [info] = calls('/oauth2/userinfo', since);
    assert.equal(info?.bearer, state.at1, 'userinfo with the current access token');
    assert.equal(calls('/oauth2/token', since).length, 0, 'no refresh while the access token is fresh');
  });

  it("fetch: the app's API gets the bearer token and the resolver identifies the user", async () => {
    const before = spa.requests.length;
    await act('api');
    const api = JSON.parse(await text('api-result'));
    assert.equal(api.status, 200);
    assert.equal(api.body['x-authgear-session-valid'], 'true');
    assert.equal(api.body['x-authgear-user-id'], srv.userIds.alice);
    const hit = spa.requests.slice(before).find((r) => r.path === '/api/me');
    assert.equal(hit?.authorization, `Bearer ${state.at1}`);
  });

  it('after a reload, refreshAccessTokenIfNeeded uses the stored refresh token: a new access token and a rotated refresh token', async () => {
    await openSpa();
    assert.equal(await text('session-state'), 'AUTHENTICATED', 'configure found the stored refresh token');
    assert.equal(await text('access-token'), '', 'no access token in memory after a reload');
    const since = log.length;
    await act('refresh');
    const [grant] = calls('/oauth2/token', since);
    assert.ok(grant, 'a refresh request');
    assert.equal(grant.form.grant_type, 'refresh_token');
    assert.equal(grant.form.client_id, 'demo');
    assert.equal(grant.form.refresh_token, state.rt1);
    assert.equal(grant.status, 200);
    const at2 = await text('access-token');
    assert.ok(at2 && at2 !== state.at1, 'a new access token');
    const rt2 = await storedRefreshToken();
    assert.ok(rt2 && rt2 !== state.rt1, 'the SDK stored the rotated refresh token');
    assert.equal((await resolve(srv.origin, { bearer: at2 })).ag['x-authgear-session-valid'], 'true');
    await act('userinfo');
    assert.equal(await text('user-id'), srv.userIds.alice);
    Object.assign(state, { at2, rt2 });
  });

  it('logout revokes: the refresh token is sent to /oauth2/revoke and the old access tokens resolve Session-Valid false', async () => {
    assert.ok(state.at2, 'the previous steps ran');
    const since = log.length;
    await act('logout');
    const [rev] = calls('/oauth2/revoke', since);
    assert.ok(rev, 'a revocation request');
    assert.equal(rev.method, 'POST');
    assert.equal(rev.form.token, state.rt2, 'the current refresh token is revoked');
    assert.equal(rev.status, 200);
    assert.equal(await text('session-state'), 'NO_SESSION');
    assert.equal(await storedRefreshToken(), null, 'the SDK forgot the refresh token');
    for (const [name, token] of [['first', state.at1], ['refreshed', state.at2]]) {
      const r = await resolve(srv.origin, { bearer: token });
      assert.equal(r.status, 200);
      assert.equal(r.ag['x-authgear-session-valid'], 'false', `the ${name} access token is revoked`);
    }
    const again = await refresh(srv.origin, state.rt2);
    assert.equal(again.status, 400);
    assert.equal(again.json().error, 'invalid_grant');
    assert.deepEqual(pageErrors, []);
  });

  it(`an expired access token (client with ${SHORT_LIFETIME} s tokens) is refreshed by fetchUserInfo on its own`, async () => {
    await browser.context.clearCookies();
    await page.evaluate(() => { localStorage.clear(); sessionStorage.clear(); });
    spa.config.clientID = 'demo-short';
    try {
      await openSpa();
      assert.equal(await text('client-id'), 'demo-short');
      await logIn('alice');
      const at1 = await text('access-token');
      assert.equal(decodeJwt(at1).payload.client_id, 'demo-short');
      await sleep(SHORT_LIFETIME * 1000 + 300); // the SDK refreshes after 90 % of expires_in
      const since = log.length;
      await act('userinfo');
      const token = calls('/oauth2/token', since);
      const info = calls('/oauth2/userinfo', since);
      assert.equal(token.length, 1, 'one refresh before userinfo');
      assert.equal(token[0].form.grant_type, 'refresh_token');
      assert.equal(token[0].status, 200);
      assert.ok(log.indexOf(token[0]) < log.indexOf(info[0]), 'refresh first, then userinfo');
      const at2 = await text('access-token');
      assert.ok(at2 !== at1, 'a new access token');
      assert.equal(info[0].bearer, at2, 'userinfo with the new token');
      assert.equal(await text('user-id'), srv.userIds.alice);
      await act('logout');
      assert.equal((await resolve(srv.origin, { bearer: at2 })).ag['x-authgear-session-valid'], 'false');
    } finally {
      spa.config.clientID = 'demo';
    }
    assert.deepEqual(pageErrors, []);
  });

  it('every SDK request to Latchkey succeeded (CORS included) and used only supported endpoints; nothing went elsewhere', () => {
    const elsewhere = urls.filter((u) => !u.startsWith(`${srv.origin}/`) && !u.startsWith(`${spa.origin}/`));
    assert.deepEqual(elsewhere, [], 'requests only to Latchkey and the SPA');
    const sdk = log.filter((r) => r.path !== '/favicon.ico'); // the browser's own, on the login page
    const paths = [...new Set(sdk.map((r) => `${r.method} ${r.path}`))].sort();
    assert.deepEqual(paths, [
      'GET /.well-known/openid-configuration',
      'GET /oauth2/authorize',
      'GET /oauth2/userinfo',
      'POST /oauth2/authorize',
      'POST /oauth2/revoke',
      'POST /oauth2/token',
    ].sort());
    const bad = sdk.filter((r) => ![200, 302].includes(r.status));
    assert.deepEqual(bad, [], 'no failed request');
  });
});
