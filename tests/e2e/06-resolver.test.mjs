// GET|HEAD /_resolver/resolve: identity headers for bearer tokens and cookies,
// invalid credentials of every kind, strict mode, header spoofing, methods,
// and `latchkey users disable` while the server runs.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import {
  startServer, baseConfig, demoClient, backendClient, clientConfig, login, refresh, resolve, req, raw, runCli,
  decodeJwt, signJwt, b64url, sleep, nowSec, parseSetCookie, isClearing, randomString,
} from './harness.mjs';

const SHORT_REDIRECT = 'http://127.0.0.1:4005/callback';

function onlyInvalid(r, what) {
  assert.equal(r.status, 200, `${what}: status ${r.status}`);
  assert.deepEqual(r.ag, { 'x-authgear-session-valid': 'false' }, `${what}: only Session-Valid false (got ${JSON.stringify(r.ag)})`);
}

function tamperSignature(token) {
  const [h, p, s] = token.split('.');
  const i = Math.floor(s.length / 2);
  const c = s[i] === 'A' ? 'B' : 'A';
  return `${h}.${p}.${s.slice(0, i)}${c}${s.slice(i + 1)}`;
}

function tamperPayload(token, changes) {
  const [h, p, s] = token.split('.');
  const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
  return `${h}.${b64url(JSON.stringify({ ...payload, ...changes }))}.${s}`;
}

describe('resolver', { timeout: 120000 }, () => {
  let srv;
  let bobTokens;
  let bobCookie;
  before(async () => {
    srv = await startServer({
      users: [
        { username: 'alice' },
        { username: 'bob', verified: true, roles: ['a', 'b'] },
        { username: 'carol', verified: true },
      ],
      config: (o) => baseConfig(o, {
        jwt: { time_tolerance_seconds: 0 },
        clients: [
          demoClient(),
          backendClient(),
          clientConfig({ client_id: 'short', name: 'Short-lived', redirect_uris: [SHORT_REDIRECT], access_token_lifetime_seconds: 2 }),
        ],
      }),
    });
    const l = await login(srv.origin, { username: 'bob' });
    bobTokens = l.tokens;
    bobCookie = `session=${l.browser.cookie('session')}`;
    assert.ok(l.browser.cookie('session'), 'login set a session cookie');
  });
  after(async () => { await srv?.cleanup(); });

  function checkBob(r, what) {
    assert.equal(r.status, 200, what);
    const claims = decodeJwt(bobTokens.access_token).payload;
    assert.equal(r.ag['x-authgear-session-valid'], 'true', `${what}: valid`);
    assert.equal(r.ag['x-authgear-user-id'], srv.userIds.bob, `${what}: user id`);
    assert.equal(r.ag['x-authgear-user-anonymous'], 'false');
    assert.equal(r.ag['x-authgear-user-verified'], 'true');
    assert.equal(r.ag['x-authgear-user-can-reauthenticate'], 'true');
    assert.deepEqual(r.ag['x-authgear-user-roles']?.split(',').sort(), ['a', 'b'], `${what}: roles comma-joined`);
    assert.equal(r.ag['x-authgear-session-amr'], 'pwd', `${what}: amr`);
    assert.match(r.ag['x-authgear-session-authenticated-at'] ?? '', /^\d+$/, `${what}: authenticated-at in Unix seconds`);
    const at = Number(r.ag['x-authgear-session-authenticated-at']);
    assert.ok(Math.abs(at - nowSec()) < 120, `${what}: authenticated-at is recent`);
    assert.equal(at, claims.auth_time, `${what}: authenticated-at = auth_time`);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
  }

  it('no credential → 200 without any X-Authgear-* header', async () => {
    for (const cred of [{}, { cookie: 'other=1; foo=bar' }, { headers: { authorization: 'Basic Zm9vOmJhcg==' } }]) {
      const r = await resolve(srv.origin, cred);
      assert.equal(r.status, 200);
      assert.deepEqual(r.ag, {}, `no identity headers for ${JSON.stringify(cred)}`);
      assert.equal(r.res.text, '', 'no body');
    }
  });

  it('valid bearer → every header per contract', async () => {
    checkBob(await resolve(srv.origin, { bearer: bobTokens.access_token }), 'bearer');
  });

  it('valid cookie → the same headers', async () => {
    checkBob(await resolve(srv.origin, { cookie: bobCookie }), 'cookie');
    checkBob(await resolve(srv.origin, { cookie: `a=b; ${bobCookie}; c=d` }), 'cookie among others');
  });

  it('user without roles: no Roles header; unverified user: Verified false', async () => {
    const { tokens } = await login(srv.origin, { username: 'alice' });
    const r = await resolve(srv.origin, { bearer: tokens.access_token });
    assert.equal(r.ag['x-authgear-session-valid'], 'true');
    assert.equal(r.ag['x-authgear-user-id'], srv.userIds.alice);
    assert.equal(r.ag['x-authgear-user-verified'], 'false');
    assert.equal(r.ag['x-authgear-user-roles'], undefined, 'no Roles header when the user has none');
  });

  it('the Bearer scheme is case-insensitive (RFC 7235)', async () => {
    for (const scheme of ['bearer', 'BEARER']) {
      checkBob(await resolve(srv.origin, { headers: { authorization: `${scheme} ${bobTokens.access_token}` } }), scheme);
    }
  });

  it('bearer decides when present (no fallback to the cookie)', async () => {
    onlyInvalid(await resolve(srv.origin, { bearer: 'garbage', cookie: bobCookie }), 'garbage bearer + valid cookie');
    checkBob(await resolve(srv.origin, { bearer: bobTokens.access_token, cookie: 'session=nonsense.nonsense' }), 'valid bearer + bad cookie');
    checkBob(await resolve(srv.origin, { headers: { authorization: 'Basic Zm9vOmJhcg==' }, cookie: bobCookie }), 'Basic auth is not a bearer: the cookie decides');
  });

  it('invalid bearer tokens → Session-Valid false only', async () => {
    const at = bobTokens.access_token;
    const { header, payload } = decodeJwt(at);
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const cases = {
      garbage: 'garbage',
      'garbage JWT-looking': 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln',
      'tampered signature': tamperSignature(at),
      'tampered payload (sub)': tamperPayload(at, { sub: srv.userIds.alice }),
      'tampered payload (exp)': tamperPayload(at, { exp: payload.exp + 3600 }),
      'alg none': signJwt({ ...header, alg: 'none' }, payload),
      'alg none, no kid': signJwt({ alg: 'none', typ: 'at+jwt' }, payload),
      'unknown kid': signJwt({ ...header, kid: 'unknown-kid' }, payload, privateKey),
      'known kid, foreign key': signJwt(header, payload, privateKey),
      'HS256 (alg confusion)': (() => {
        const h = b64url(JSON.stringify({ ...header, alg: 'HS256' }));
        const p = b64url(JSON.stringify(payload));
        return `${h}.${p}.${b64url(crypto.createHmac('sha256', 'x').update(`${h}.${p}`).digest())}`;
      })(),
      'refresh token as bearer': bobTokens.refresh_token,
      'id token as bearer': bobTokens.id_token,
    };
    for (const [what, token] of Object.entries(cases)) {
      onlyInvalid(await resolve(srv.origin, { bearer: token }), what);
    }
    // the real one is still fine
    checkBob(await resolve(srv.origin, { bearer: at }), 'original');
  });

  it('expired bearer (lifetime 2 s, tolerance 0) → false', async () => {
    const { tokens } = await login(srv.origin, { clientId: 'short', redirectUri: SHORT_REDIRECT });
    const c = decodeJwt(tokens.access_token).payload;
    assert.equal(c.exp - c.iat, 2, 'access_token_lifetime_seconds honoured');
    assert.equal((await resolve(srv.origin, { bearer: tokens.access_token })).ag['x-authgear-session-valid'], 'true');
    await sleep(3200);
    onlyInvalid(await resolve(srv.origin, { bearer: tokens.access_token }), 'expired');
    // the session itself is alive: refreshing gives a working token
    const r = await refresh(srv.origin, tokens.refresh_token, { clientId: 'short' });
    assert.equal(r.status, 200, r.text);
    assert.equal((await resolve(srv.origin, { bearer: r.json().access_token })).ag['x-authgear-session-valid'], 'true');
  });

  it('invalid cookie → false and a Set-Cookie clearing it', async () => {
    const sid = bobCookie.slice('session='.length).split('.')[0];
    const cases = {
      garbage: 'session=nonsense',
      'unknown session': `session=${crypto.randomUUID()}.${'a'.repeat(32)}`,
      'right id, wrong secret': `session=${sid}.${'Z'.repeat(32)}`,
      'refresh token as cookie': `session=${bobTokens.refresh_token}`,
    };
    for (const [what, cookie] of Object.entries(cases)) {
      const r = await resolve(srv.origin, { cookie });
      onlyInvalid(r, what);
      const cleared = r.setCookies.map(parseSetCookie).find((c) => c.name === 'session');
      assert.ok(cleared, `${what}: Set-Cookie for session (${JSON.stringify(r.setCookies)})`);
      assert.ok(isClearing(cleared), `${what}: cookie cleared (${cleared.raw})`);
      assert.equal(cleared.attrs.path, '/', `${what}: cleared on Path=/`);
    }
  });

  it('strict mode per request (?strict=true) → 401 with WWW-Authenticate Bearer', async () => {
    for (const [what, cred] of [['no credential', {}], ['garbage bearer', { bearer: 'garbage' }], ['bad cookie', { cookie: 'session=x.y' }]]) {
      const r = await resolve(srv.origin, { ...cred, query: '?strict=true' });
      assert.equal(r.status, 401, `${what}: ${r.status}`);
      assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/, `${what}: WWW-Authenticate`);
      assert.equal(r.ag['x-authgear-user-id'], undefined);
    }
    const ok = await resolve(srv.origin, { bearer: bobTokens.access_token, query: '?strict=true' });
    checkBob(ok, 'strict valid');
  });

  it('forged X-Authgear-* request headers are never echoed', async () => {
    const forged = {
      'x-authgear-user-id': 'forged-user',
      'x-authgear-session-valid': 'true',
      'x-authgear-user-roles': 'admin',
    };
    const r = await resolve(srv.origin, { headers: forged });
    assert.deepEqual(r.ag, {}, `no credential + forged headers: ${JSON.stringify(r.ag)}`);
    const r2 = await resolve(srv.origin, { headers: forged, bearer: 'garbage' });
    onlyInvalid(r2, 'garbage bearer + forged headers');
    const r3 = await resolve(srv.origin, { headers: forged, bearer: bobTokens.access_token });
    checkBob(r3, 'valid bearer + forged headers');
  });

  it('HEAD works; other methods → 405 with Allow', async () => {
    const h = await resolve(srv.origin, { method: 'HEAD', bearer: bobTokens.access_token });
    checkBob(h, 'HEAD');
    const hn = await resolve(srv.origin, { method: 'HEAD' });
    assert.equal(hn.status, 200);
    assert.deepEqual(hn.ag, {});
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
      const r = await req(`${srv.origin}/_resolver/resolve`, { method, headers: { authorization: `Bearer ${bobTokens.access_token}` } });
      assert.equal(r.status, 405, `${method}: ${r.status}`);
      assert.ok(r.headers.get('allow'), `${method}: Allow header`);
      assert.match(r.headers.get('allow'), /GET/);
      assert.equal(r.headers.get('x-authgear-user-id'), null);
    }
  });

  it('never sends CORS headers', async () => {
    const r = await req(`${srv.origin}/_resolver/resolve`, { origin: 'http://127.0.0.1:4000', bearer: bobTokens.access_token });
    for (const [k] of r.headers) assert.ok(!k.startsWith('access-control-'), `no ${k}`);
    const pre = await req(`${srv.origin}/_resolver/resolve`, {
      method: 'OPTIONS', headers: { origin: 'http://127.0.0.1:4000', 'access-control-request-method': 'GET' },
    });
    assert.equal(pre.headers.get('access-control-allow-origin'), null);
  });

  it('users disable while running: cookie and bearer resolve false immediately, refresh fails', async () => {
    const l = await login(srv.origin, { username: 'carol' });
    const cookie = `session=${l.browser.cookie('session')}`;
    assert.equal((await resolve(srv.origin, { cookie })).ag['x-authgear-session-valid'], 'true');
    assert.equal((await resolve(srv.origin, { bearer: l.tokens.access_token })).ag['x-authgear-session-valid'], 'true');
    const d = await runCli(['users', 'disable', '--data-dir', srv.dataDir, '--username', 'carol', '--reason', 'e2e']);
    assert.equal(d.code, 0, `users disable: ${d.stderr}`);
    onlyInvalid(await resolve(srv.origin, { cookie }), 'cookie of a disabled user');
    const fresh = await Promise.all(Array.from({ length: 16 }, () => raw(srv.origin, {
      path: '/_resolver/resolve', headers: { authorization: `Bearer ${l.tokens.access_token}` },
    })));
    assert.deepEqual([...new Set(fresh.map((r) => r.headers['x-authgear-session-valid']))], ['false'], 'every connection/worker sees the disable');
    onlyInvalid(await resolve(srv.origin, { bearer: l.tokens.access_token }), 'bearer of a disabled user');
    const strict = await resolve(srv.origin, { bearer: l.tokens.access_token, query: '?strict=true' });
    assert.equal(strict.status, 401, 'strict: disabled user → 401');
    const rr = await refresh(srv.origin, l.tokens.refresh_token);
    assert.equal(rr.status, 400, rr.text);
    assert.equal(rr.json().error, 'invalid_grant');
    const u = await req(`${srv.origin}/oauth2/userinfo`, { bearer: l.tokens.access_token });
    assert.equal(u.status, 401);
    // enabling again does not resurrect the revoked sessions, but a new login works
    const e = await runCli(['users', 'enable', '--data-dir', srv.dataDir, '--username', 'carol']);
    assert.equal(e.code, 0, `users enable: ${e.stderr}`);
    onlyInvalid(await resolve(srv.origin, { bearer: l.tokens.access_token }), 'old bearer after enable');
    const l2 = await login(srv.origin, { username: 'carol' });
    assert.equal((await resolve(srv.origin, { bearer: l2.tokens.access_token })).ag['x-authgear-session-valid'], 'true');
  });
});

describe('resolver.strict: true in config', { timeout: 60000 }, () => {
  let srv;
  before(async () => {
    srv = await startServer({ config: (o) => baseConfig(o, { resolver: { strict: true } }) });
  });
  after(async () => { await srv?.cleanup(); });

  it('401 for no credential and for invalid ones, 200 for valid', async () => {
    for (const cred of [{}, { bearer: 'garbage' }, { cookie: `session=${randomString()}.${'a'.repeat(32)}` }]) {
      const r = await resolve(srv.origin, cred);
      assert.equal(r.status, 401, JSON.stringify(cred));
      assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
    }
    const { tokens } = await login(srv.origin);
    const ok = await resolve(srv.origin, { bearer: tokens.access_token });
    assert.equal(ok.status, 200);
    assert.equal(ok.ag['x-authgear-session-valid'], 'true');
  });
});

describe('browser session idle timeout is reset by use', { timeout: 60000 }, () => {
  let srv;
  before(async () => { srv = await startServer({ config: (o) => baseConfig(o, { session: { idle_timeout_enabled: true, idle_timeout_seconds: 3 } }) }); });
  after(async () => { await srv?.cleanup(); });

  it('resolving the cookie every 1.2 s for 6 s keeps a 3 s idle session alive', async () => {
    const l = await login(srv.origin);
    const cookie = `session=${l.browser.cookie('session')}`;
    const started = Date.now();
    for (let i = 0; i < 5; i++) {
      await sleep(1200);
      const r = await resolve(srv.origin, { cookie });
      assert.equal(r.ag['x-authgear-session-valid'], 'true', `resolve #${i} at ${Date.now() - started} ms (last use ~1.2 s before)`);
    }
    await sleep(3500);
    onlyInvalid(await resolve(srv.origin, { cookie }), 'idle for 3.5 s');
  });
});

for (const [name, session] of [
  ['session.lifetime_seconds: 2', { lifetime_seconds: 2 }],
  ['session.idle_timeout_seconds: 2', { idle_timeout_enabled: true, idle_timeout_seconds: 2 }],
]) {
  describe(`browser session expiry (${name})`, { timeout: 60000 }, () => {
    let srv;
    before(async () => { srv = await startServer({ config: (o) => baseConfig(o, { session }) }); });
    after(async () => { await srv?.cleanup(); });

    it('the cookie resolves false after expiry, is cleared, and authorize shows the form again', async () => {
      const l = await login(srv.origin);
      const cookie = `session=${l.browser.cookie('session')}`;
      assert.equal((await resolve(srv.origin, { cookie })).ag['x-authgear-session-valid'], 'true');
      await sleep(3200);
      const r = await resolve(srv.origin, { cookie });
      onlyInvalid(r, 'expired cookie');
      const cleared = r.setCookies.map(parseSetCookie).find((c) => c.name === 'session');
      assert.ok(cleared && isClearing(cleared), `expired cookie cleared: ${JSON.stringify(r.setCookies)}`);
      const page = await l.browser.go(new URL(`/oauth2/authorize?${new URLSearchParams({
        response_type: 'code', client_id: 'demo', redirect_uri: 'http://127.0.0.1:4000/callback', scope: 'openid', state: 'x',
        code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGrSstw-cM', code_challenge_method: 'S256',
      })}`, srv.origin).toString());
      assert.equal(page.status, 200, `expired session must not skip the form: ${page.status} ${page.location}`);
    });
  });
}

describe('time checks on correctly signed tokens (signed with the server\'s own key)', { timeout: 60000 }, () => {
  let srv;
  let key;
  let kid;
  before(async () => {
    srv = await startServer({ config: (o) => baseConfig(o, { jwt: { time_tolerance_seconds: 60 } }) });
    const text = await readFile(path.join(srv.dataDir, 'latchkey.secrets.yaml'), 'utf8');
    const jwk = JSON.parse(text.match(/^\s*-\s*(\{.*"kty".*\})\s*$/m)[1]);
    kid = jwk.kid;
    key = crypto.createPrivateKey({ key: jwk, format: 'jwk' });
  });
  after(async () => { await srv?.cleanup(); });

  it('exp, nbf and iat are checked with the configured tolerance (60 s)', async () => {
    const { tokens } = await login(srv.origin);
    const { header, payload } = decodeJwt(tokens.access_token);
    assert.equal(header.kid, kid, 'the oracle key is the signing key');
    const now = nowSec();
    const sign = (changes) => signJwt(header, { ...payload, ...changes }, key);
    assert.equal((await resolve(srv.origin, { bearer: sign({}) })).ag['x-authgear-session-valid'], 'true', 'control: re-signed token is valid');
    const cases = [
      ['expired 30 s ago (within tolerance)', { exp: now - 30 }, 'true'],
      ['expired 300 s ago', { exp: now - 300 }, 'false'],
      ['nbf 30 s ahead (within tolerance)', { nbf: now + 30 }, 'true'],
      ['nbf 600 s ahead', { nbf: now + 600 }, 'false'],
      ['iat 600 s in the future', { iat: now + 600, exp: now + 2400 }, 'false'],
      ['no exp', { exp: undefined }, 'false'],
      ['other issuer', { iss: 'https://evil.example' }, 'false'],
      ['aud without the issuer', { aud: ['https://api.example.test'] }, 'false'],
      ['typ JWT instead of at+jwt', null, 'false'],
    ];
    for (const [what, changes, expected] of cases) {
      const token = changes === null ? signJwt({ ...header, typ: 'JWT' }, payload, key) : sign(changes);
      const r = await resolve(srv.origin, { bearer: token });
      assert.equal(r.ag['x-authgear-session-valid'], expected, `${what}: expected ${expected}, got ${JSON.stringify(r.ag)}`);
    }
  });

  it('an expired id_token_hint (ours) still logs out at end_session', async () => {
    const l = await login(srv.origin);
    const { header, payload } = decodeJwt(l.tokens.id_token);
    const now = nowSec();
    const expired = signJwt(header, { ...payload, iat: now - 3600, exp: now - 3300 }, key);
    const r = await req(`${srv.origin}/oauth2/end_session?${new URLSearchParams({
      id_token_hint: expired, post_logout_redirect_uri: 'http://127.0.0.1:4000/', state: 'e',
    })}`);
    assert.equal(r.status, 302, `${r.status} ${r.text.slice(0, 200)}`);
    assert.equal(new URL(r.location).searchParams.get('state'), 'e');
    assert.equal((await resolve(srv.origin, { bearer: l.tokens.access_token })).ag['x-authgear-session-valid'], 'false',
      'the expired hint identified the session to revoke');
  });
});
