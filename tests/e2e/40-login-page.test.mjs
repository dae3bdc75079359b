// The login page in a real browser: Debian's headless Chromium driven by playwright-core
// (never Playwright's own browser download). A server with `ui` branding; the page must
// render with the product name, logo and accent colour, work with the keyboard alone
// (autofocus, Tab, Enter) up to the redirect with a code, show a wrong password in a
// role=alert element keeping the username, fit a phone screen, and make no request
// outside the server's origin. Screenshots go to artifacts/screenshots/ (gitignored).
//
// Chromium: /usr/bin/chromium (scripts/install-browser installs it; CHROMIUM_BIN
// overrides). If it is missing or does not start, the before hook fails and so does
// every test here: nothing is skipped.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { launchChromium } from './lib/browser.mjs';
import {
  startServer, baseConfig, authorizeUrl, pkce, randomString, redeemCode, decodeJwt, DEMO_REDIRECT, DEFAULT_PASSWORD,
} from './harness.mjs';

const SHOTS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'artifacts', 'screenshots');

const PRODUCT = 'Acme Identity';
const COLOR = '#c2185b';
const COLOR_RGB = 'rgb(194, 24, 91)';
const MSG = 'Incorrect username or password.';
const PHONE = { viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 3 };

function authorizeParams() {
  const { verifier, challenge } = pkce();
  const params = {
    response_type: 'code',
    client_id: 'demo',
    redirect_uri: DEMO_REDIRECT,
    scope: 'openid offline_access',
    state: randomString(),
    nonce: randomString(),
    code_challenge: challenge,
    code_challenge_method: 'S256',
  };
  return { params, verifier };
}

describe('login page in headless Chromium', { timeout: 180000 }, () => {
  let srv;
  let logoUrl;
  const browsers = []; // {context, dir}
  let desktop;
  let phone;
  const requests = []; // every request either browser made: {url, navigation, context}
  const redirects = []; // requests to the redirect_uri, aborted
  const pageErrors = [];

  function watch(ctx, name) {
    ctx.on('request', (r) => requests.push({ url: r.url(), navigation: r.isNavigationRequest(), context: name }));
  }

  /**
   * A new page whose requests outside the server origin are failed in the browser, before
   * any connection: the redirect_uri has no server (and another test file may run one on
   * port 4000), and anything else would be a leak, caught by the last test. This uses the
   * DevTools Fetch domain because Playwright's page.route never sees the target of a
   * redirect, and the hop to the redirect_uri is the 302 answering the login POST.
   */
  async function newPage(ctx) {
    await ctx.clearCookies();
    const page = await ctx.newPage();
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    const cdp = await ctx.newCDPSession(page);
    cdp.on('Fetch.requestPaused', ({ requestId, request }) => {
      const own = request.url.startsWith(`${srv.origin}/`);
      if (!own && request.url.startsWith(`${DEMO_REDIRECT}?`)) redirects.push(request.url);
      const done = own ? cdp.send('Fetch.continueRequest', { requestId })
        : cdp.send('Fetch.failRequest', { requestId, errorReason: 'BlockedByClient' });
      done.catch(() => { /* the page may be closing */ });
    });
    await cdp.send('Fetch.enable', { patterns: [{ urlPattern: '*', requestStage: 'Request' }] });
    return page;
  }

  async function shot(t, page, name) {
    await mkdir(SHOTS, { recursive: true });
    const file = path.join(SHOTS, `40-login-page-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    t.diagnostic(`screenshot: ${file}`);
    console.log(`screenshot: ${file}`);
    return file;
  }

  /** The URL of the next navigation request to the redirect_uri (which is aborted). */
  function nextRedirect(page) {
    return page.waitForRequest((r) => r.url().startsWith(`${DEMO_REDIRECT}?`) && r.isNavigationRequest())
      .then((r) => new URL(r.url()));
  }

  const activeId = (page) => page.evaluate(() => document.activeElement?.id ?? null);

  before(async () => {
    srv = await startServer({
      config: (o) => {
        logoUrl = `${o}/static/acme-logo.png`; // same origin: allowed by the config check; 404s, which is fine
        return baseConfig(o, { ui: { product_name: PRODUCT, primary_color: COLOR, logo_url: logoUrl } });
      },
    });
    desktop = await launchChromium({ viewport: { width: 1280, height: 800 } });
    browsers.push(desktop);
    phone = await launchChromium(PHONE);
    browsers.push(phone);
    watch(desktop.context, 'desktop');
    watch(phone.context, 'phone');
  });

  after(async () => {
    for (const b of browsers) {
      await b.context.close().catch(() => {});
      await rm(b.dir, { recursive: true, force: true });
    }
    await srv?.cleanup();
  });

  it('renders: product name in the title, heading, labelled form, logo, accent colour', async (t) => {
    const page = await newPage(desktop.context);
    const { params } = authorizeParams();
    const res = await page.goto(authorizeUrl(srv.origin, params));
    assert.equal(res.status(), 200);
    assert.match(await page.title(), new RegExp(PRODUCT));
    assert.equal((await page.getByRole('heading', { level: 1 }).textContent()).trim(), `Sign in to ${PRODUCT}`);
    assert.equal(await page.locator('form[method="post"][action="/oauth2/authorize"]').count(), 1, 'one login form');
    // Labels are tied to their inputs (accessible names), and the inputs are visible.
    const username = page.getByLabel('Username');
    const password = page.getByLabel('Password');
    assert.ok(await username.isVisible(), 'username field visible');
    assert.ok(await password.isVisible(), 'password field visible');
    assert.equal(await username.getAttribute('name'), 'username');
    assert.equal(await password.getAttribute('type'), 'password');
    assert.equal(await username.getAttribute('autocomplete'), 'username');
    assert.equal(await password.getAttribute('autocomplete'), 'current-password');
    const button = page.getByRole('button', { name: 'Sign in' });
    assert.ok(await button.isVisible(), 'Sign in button visible');
    assert.match(await page.locator('main').textContent(), /Continue to Demo app/);
    // The configured logo, by its same-origin URL.
    const logo = page.locator('img.logo');
    assert.equal(await logo.count(), 1, 'one logo image');
    assert.equal(await logo.getAttribute('src'), logoUrl);
    assert.ok(requests.some((r) => r.url === logoUrl), 'the browser requested the logo from the server origin');
    // The accent colour reaches the button.
    assert.equal(await button.evaluate((el) => getComputedStyle(el).backgroundColor), COLOR_RGB);
    await shot(t, page, 'desktop-form');
    assert.deepEqual(pageErrors, []);
    await page.close();
  });

  it('keyboard only: autofocus on username, Tab to password, Enter submits, redirect with code and state', async () => {
    const page = await newPage(desktop.context);
    const { params, verifier } = authorizeParams();
    await page.goto(authorizeUrl(srv.origin, params));
    await page.waitForFunction(() => document.activeElement?.id === 'username', null, { timeout: 5000 })
      .catch(async () => assert.fail(`focus did not start in the username field (active element: ${await activeId(page)})`));
    await page.keyboard.type('alice');
    await page.keyboard.press('Tab');
    assert.equal(await activeId(page), 'password', 'Tab moves from username to password');
    await page.keyboard.type(DEFAULT_PASSWORD);
    const redirected = nextRedirect(page);
    await page.keyboard.press('Enter');
    const callback = await redirected;
    assert.equal(`${callback.origin}${callback.pathname}`, DEMO_REDIRECT);
    const code = callback.searchParams.get('code');
    assert.ok(code, `code in ${callback}`);
    assert.equal(callback.searchParams.get('state'), params.state, 'state echoed');
    assert.equal(callback.searchParams.get('iss'), srv.origin, 'iss (RFC 9207)');
    // The code the browser carried is real: it redeems for alice's tokens.
    const r = await redeemCode(srv.origin, { code, redirectUri: DEMO_REDIRECT, verifier, clientId: 'demo' });
    assert.equal(r.status, 200, r.text);
    assert.equal(decodeJwt(r.json().id_token).payload.sub, srv.userIds.alice);
    assert.deepEqual(pageErrors, []);
    await page.close();
  });

  it('wrong password: the message in a role=alert element, the username kept, the password not; then signs in from there', async (t) => {
    const page = await newPage(desktop.context);
    const { params } = authorizeParams();
    await page.goto(authorizeUrl(srv.origin, params));
    await page.waitForFunction(() => document.activeElement?.id === 'username', null, { timeout: 5000 });
    await page.keyboard.type('alice');
    await page.keyboard.press('Tab');
    await page.keyboard.type('not the password');
    const [res] = await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
    assert.equal(res.status(), 200);
    assert.equal(new URL(page.url()).origin, srv.origin, 'still on the login page');
    const alert = page.getByRole('alert');
    assert.equal(await alert.count(), 1, 'one role=alert element');
    assert.equal((await alert.textContent()).trim(), MSG);
    assert.ok(await alert.isVisible(), 'the error is visible');
    assert.equal(await page.inputValue('#username'), 'alice', 'typed username kept');
    assert.equal(await page.inputValue('#password'), '', 'password not echoed back');
    await shot(t, page, 'desktop-error');
    // The error page still carries the authorize request: correct password, Enter.
    await page.waitForFunction(() => document.activeElement?.id === 'username', null, { timeout: 5000 })
      .catch(async () => assert.fail(`focus is not on the username field after an error (active element: ${await activeId(page)})`));
    await page.keyboard.press('Tab');
    assert.equal(await activeId(page), 'password');
    await page.keyboard.type(DEFAULT_PASSWORD);
    const redirected = nextRedirect(page);
    await page.keyboard.press('Enter');
    const callback = await redirected;
    assert.ok(callback.searchParams.get('code'), 'code after the retry');
    assert.equal(callback.searchParams.get('state'), params.state, 'original state after the retry');
    assert.deepEqual(pageErrors, []);
    await page.close();
  });

  it('phone viewport (390x844, isMobile, 3x): no horizontal scrolling, inputs at least 40 px tall, in form and error state', async (t) => {
    const page = await newPage(phone.context);
    const { params } = authorizeParams();
    await page.goto(authorizeUrl(srv.origin, params));
    const measure = () => page.evaluate(() => {
      const box = (sel) => document.querySelector(sel)?.getBoundingClientRect().toJSON() ?? null;
      return {
        innerWidth: window.innerWidth,
        scrollWidth: document.scrollingElement.scrollWidth,
        dpr: window.devicePixelRatio,
        username: box('#username'),
        password: box('#password'),
        button: box('button[type=submit]'),
        main: box('main'),
      };
    });
    const check = (m, state) => {
      assert.equal(m.innerWidth, 390, `${state}: layout viewport is the device width (meta viewport)`);
      assert.equal(m.dpr, 3, `${state}: device scale factor`);
      assert.ok(m.scrollWidth <= m.innerWidth, `${state}: no horizontal scroll (scrollWidth ${m.scrollWidth} > innerWidth ${m.innerWidth})`);
      for (const k of ['username', 'password', 'button']) {
        assert.ok(m[k], `${state}: ${k} present`);
        assert.ok(m[k].height >= 40, `${state}: ${k} is ${m[k].height} px tall, want >= 40`);
        assert.ok(m[k].left >= 0 && m[k].right <= m.innerWidth, `${state}: ${k} inside the viewport (${m[k].left}..${m[k].right})`);
      }
      assert.ok(m.main.left >= 0 && m.main.right <= m.innerWidth, `${state}: the card fits (${m.main.left}..${m.main.right})`);
    };
    const form = await measure();
    check(form, 'form');
    t.diagnostic(`phone form: ${JSON.stringify({ username: form.username.height, password: form.password.height, button: form.button.height, scrollWidth: form.scrollWidth })}`);
    await shot(t, page, 'phone-form');
    await page.fill('#username', 'alice');
    await page.fill('#password', 'not the password');
    await Promise.all([page.waitForNavigation(), page.tap('button[type=submit]')]);
    assert.equal((await page.getByRole('alert').textContent()).trim(), MSG);
    check(await measure(), 'error');
    await shot(t, page, 'phone-error');
    assert.deepEqual(pageErrors, []);
    await page.close();
  });

  it('no request left the server origin (except the aborted navigations to the redirect_uri)', () => {
    assert.ok(requests.length >= 8, `requests were recorded (${requests.length})`);
    const foreign = requests.filter((r) => !r.url.startsWith(`${srv.origin}/`));
    for (const r of foreign) {
      assert.ok(r.url.startsWith(`${DEMO_REDIRECT}?`) && r.navigation,
        `request outside ${srv.origin}: ${r.url} (${r.context}, navigation: ${r.navigation})`);
    }
    assert.equal(foreign.length, 2, `the two successful sign-ins navigated to the redirect_uri: ${JSON.stringify(foreign)}`);
    assert.deepEqual(redirects.sort(), foreign.map((r) => r.url).sort(), 'and those were aborted');
  });
});
