// A minimal single-page app that signs in against Latchkey with Authgear's Web SDK
// (@authgear/web), in its default "refresh_token" session type:
//
//   configure -> startAuthentication (redirect to /oauth2/authorize, PKCE S256)
//   -> Latchkey's login page -> /callback: finishAuthentication (code exchange at
//   /oauth2/token, then /oauth2/userinfo) -> fetchUserInfo -> refreshAccessTokenIfNeeded
//   (refresh_token grant) -> fetch (the app's own API with the bearer token)
//   -> logout (/oauth2/revoke with the refresh token).
//
// Everything the SDK reports is written into the page, so a person (or the
// end-to-end test tests/e2e/41-authgear-sdk.test.mjs) can read it.
// /vendor/authgear-web.js is the SDK's self-contained ES module build
// (node_modules/@authgear/web/dist/authgear-web.module.js), served by server.mjs.

import authgear, { VERSION } from '/vendor/authgear-web.js';

const $ = (id) => document.getElementById(id);
const show = (id, value) => { $(id).textContent = value === undefined || value === null ? '' : String(value); };

const changes = [];
let seq = 0;

function showSession() {
  show('session-state', authgear.sessionState);
  show('access-token', authgear.accessToken ?? '');
}

function showUser(info) {
  show('user-id', info.sub);
  show('user-verified', info.isVerified);
  show('user-anonymous', info.isAnonymous);
  show('user-can-reauthenticate', info.canReauthenticate);
  show('user-roles', (info.roles ?? []).join(','));
  show('userinfo-raw', JSON.stringify(info.raw));
}

function describeError(e) {
  // OAuthError has error/error_description; ServerError has reason and info.
  const parts = [e?.name ?? 'Error', e?.message ?? String(e)];
  if (e?.error) parts.push(`error=${e.error}`);
  if (e?.error_description) parts.push(`error_description=${e.error_description}`);
  if (e?.reason) parts.push(`reason=${e.reason}`);
  if (e?.info) parts.push(`info=${JSON.stringify(e.info)}`);
  return parts.join(' | ');
}

/** Runs one action and records "<n> <name> ok|failed" in #last-action. */
async function run(name, fn) {
  const n = ++seq;
  show('error', '');
  try {
    await fn();
    showSession();
    show('last-action', `${n} ${name} ok`);
  } catch (e) {
    showSession();
    show('error', `${name}: ${describeError(e)}`);
    show('last-action', `${n} ${name} failed`);
    console.error(name, e);
  }
}

async function main() {
  // The server writes config.json: {"endpoint": "<Latchkey origin>", "clientID": "<client id>"}.
  const config = await (await fetch('/config.json', { cache: 'no-store' })).json();
  show('sdk-version', VERSION);
  show('endpoint', config.endpoint);
  show('client-id', config.clientID);

  authgear.delegate = {
    onSessionStateChange(container, reason) {
      changes.push(`${container.sessionState}(${reason})`);
      show('state-changes', changes.join(' '));
      showSession();
    },
  };
  await authgear.configure({ endpoint: config.endpoint, clientID: config.clientID, sessionType: 'refresh_token' });
  showSession();

  const redirectURI = new URL('/callback', window.location.origin).toString();
  const postLogoutURI = new URL('/', window.location.origin).toString();

  $('login').addEventListener('click', () => run('login', async () => {
    const state = `spa-${crypto.randomUUID()}`;
    sessionStorage.setItem('spa_state', state);
    await authgear.startAuthentication({ redirectURI, state });
  }));
  $('userinfo').addEventListener('click', () => run('userinfo', async () => {
    showUser(await authgear.fetchUserInfo());
  }));
  $('refresh').addEventListener('click', () => run('refresh', async () => {
    await authgear.refreshAccessTokenIfNeeded();
  }));
  $('api').addEventListener('click', () => run('api', async () => {
    // authgear.fetch adds "Authorization: Bearer <access token>" (refreshing it first if needed).
    const r = await authgear.fetch('/api/me');
    show('api-result', JSON.stringify({ status: r.status, body: await r.json() }));
  }));
  $('logout').addEventListener('click', () => run('logout', async () => {
    await authgear.logout({ redirectURI: postLogoutURI });
  }));

  if (window.location.pathname === '/callback') {
    await run('finishAuthentication', async () => {
      const { userInfo, state } = await authgear.finishAuthentication();
      show('returned-state', state === sessionStorage.getItem('spa_state') ? `${state} (matches)` : `${state} (MISMATCH)`);
      sessionStorage.removeItem('spa_state');
      showUser(userInfo);
      // Drop ?code=...&state=... from the address bar, as an app should.
      window.history.replaceState(null, '', '/');
    });
  }
  show('ready', 'yes');
}

main().catch((e) => {
  show('error', `startup: ${describeError(e)}`);
  show('ready', 'failed');
  console.error(e);
});
