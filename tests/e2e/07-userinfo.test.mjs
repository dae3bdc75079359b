// GET|POST /oauth2/userinfo.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, login, req, revoke, CLAIM, decodeJwt, b64url } from './harness.mjs';

describe('userinfo', { timeout: 60000 }, () => {
  let srv;
  let tokens;
  before(async () => {
    srv = await startServer({ users: [{ username: 'erin', verified: true, roles: ['r1'] }] });
    ({ tokens } = await login(srv.origin, { username: 'erin' }));
  });
  after(async () => { await srv?.cleanup(); });

  it('valid bearer → JSON with sub and the user claims (GET and POST)', async () => {
    for (const method of ['GET', 'POST']) {
      const r = await req(`${srv.origin}/oauth2/userinfo`, { method, bearer: tokens.access_token });
      assert.equal(r.status, 200, `${method}: ${r.status} ${r.text}`);
      assert.match(r.headers.get('content-type') ?? '', /application\/json/);
      const j = r.json();
      assert.equal(j.sub, srv.userIds.erin);
      assert.equal(j[CLAIM.anonymous], false);
      assert.equal(j[CLAIM.verified], true);
      assert.equal(j[CLAIM.canReauth], true);
      assert.deepEqual(j[CLAIM.roles], ['r1']);
      assert.equal(j.preferred_username, undefined, 'no preferred_username without scope profile');
    }
  });

  it('scope profile adds preferred_username', async () => {
    const l = await login(srv.origin, { username: 'erin', scope: 'openid profile' });
    const r = await req(`${srv.origin}/oauth2/userinfo`, { bearer: l.tokens.access_token });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().preferred_username, 'erin');
  });

  it('invalid token → 401 with error="invalid_token"', async () => {
    const [h, p, s] = tokens.access_token.split('.');
    const payload = JSON.parse(Buffer.from(p, 'base64url').toString());
    const cases = ['garbage', `${h}.${b64url(JSON.stringify({ ...payload, sub: 'someone' }))}.${s}`, tokens.refresh_token];
    for (const t of cases) {
      const r = await req(`${srv.origin}/oauth2/userinfo`, { bearer: t });
      assert.equal(r.status, 401, `${t.slice(0, 12)}: ${r.status}`);
      const wa = r.headers.get('www-authenticate') ?? '';
      assert.match(wa, /^Bearer/, `WWW-Authenticate: ${wa}`);
      assert.match(wa, /error="invalid_token"/, `WWW-Authenticate: ${wa}`);
    }
  });

  it('missing token → 401 with WWW-Authenticate: Bearer realm="latchkey"', async () => {
    for (const method of ['GET', 'POST']) {
      const r = await req(`${srv.origin}/oauth2/userinfo`, { method });
      assert.equal(r.status, 401, `${method}: ${r.status}`);
      const wa = r.headers.get('www-authenticate') ?? '';
      assert.match(wa, /^Bearer realm="latchkey"/, `WWW-Authenticate: ${wa}`);
    }
  });

  it('without an Authorization header the session cookie is the credential (cookie-based apps)', async () => {
    const l = await login(srv.origin, { username: 'erin' });
    const cookie = `session=${l.browser.cookie('session')}`;
    const r = await req(`${srv.origin}/oauth2/userinfo`, { cookie });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().sub, srv.userIds.erin);
    const value = l.browser.cookie('session');
    const tampered = `${value.slice(0, -1)}${value.endsWith('x') ? 'y' : 'x'}`;
    const bad = await req(`${srv.origin}/oauth2/userinfo`, { cookie: `session=${tampered}` });
    assert.equal(bad.status, 401);
    assert.match(bad.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    // A bearer token decides when present, even beside a valid cookie.
    const both = await req(`${srv.origin}/oauth2/userinfo`, { cookie, bearer: 'not-a-token' });
    assert.equal(both.status, 401);
  });

  it('revoked session → 401 invalid_token', async () => {
    const l = await login(srv.origin, { username: 'erin' });
    assert.equal((await req(`${srv.origin}/oauth2/userinfo`, { bearer: l.tokens.access_token })).status, 200);
    assert.equal((await revoke(srv.origin, l.tokens.refresh_token)).status, 200);
    const r = await req(`${srv.origin}/oauth2/userinfo`, { bearer: l.tokens.access_token });
    assert.equal(r.status, 401);
    assert.match(r.headers.get('www-authenticate') ?? '', /error="invalid_token"/);
    assert.equal(decodeJwt(l.tokens.access_token).payload.sub, srv.userIds.erin);
  });
});
