// Bad input on every endpoint: oversized bodies, duplicate parameters,
// invalid UTF-8 / percent-encoding, wrong content types, wrong methods,
// unknown paths. Never a 500, never a hang; JSON errors on API endpoints,
// HTML on authorize / end_session.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, login, raw, rawSocket, req, BACKEND_SECRET, basicAuth, TARGET } from './harness.mjs';

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const BIG = Buffer.alloc(100 * 1024, 'a');
const bigForm = () => Buffer.concat([Buffer.from('grant_type=client_credentials&token=x&pad='), BIG]);

const API = new Set(['/oauth2/token', '/oauth2/revoke', '/oauth2/userinfo']);
const HTML = new Set(['/oauth2/authorize', '/oauth2/end_session']);

function contentType(r) {
  const h = r.headers;
  return (typeof h.get === 'function' ? h.get('content-type') : h['content-type']) ?? '';
}

function checkErrorBody(path, r, what) {
  assert.ok(r.status < 500, `${what}: never 5xx (got ${r.status} ${r.text.slice(0, 200)})`);
  if (API.has(path)) {
    assert.match(contentType(r), /application\/json/, `${what}: JSON error (got ${contentType(r)})`);
    let j;
    try { j = JSON.parse(r.text); } catch { assert.fail(`${what}: body is not JSON: ${r.text.slice(0, 200)}`); }
    assert.equal(typeof j.error, 'string', `${what}: has "error"`);
    return j;
  }
  if (HTML.has(path)) assert.match(contentType(r), /text\/html/, `${what}: HTML error page (got ${contentType(r)})`);
  return undefined;
}

// Collect every violation of a table-driven test, then fail once with all of them,
// so a report lists each failing request rather than only the first.
function collector() {
  const problems = [];
  return {
    check(fn) {
      try { fn(); } catch (e) { problems.push(e.message.split('\n')[0]); }
    },
    async checkAsync(fn) {
      try { await fn(); } catch (e) { problems.push(e.message.split('\n')[0]); }
    },
    done() { assert.deepEqual(problems, [], `${problems.length} violation(s):\n${problems.join('\n')}`); },
  };
}

function expect400(path, r, what, { code = 'invalid_request' } = {}) {
  assert.equal(r.status, 400, `${what}: expected 400, got ${r.status} ${r.text.slice(0, 200)}`);
  const j = checkErrorBody(path, r, what);
  if (j && code) assert.equal(j.error, code, `${what}: error code`);
}

describe('bad input', { timeout: 120000 }, () => {
  let srv;
  let at;
  before(async () => {
    srv = await startServer();
    ({ tokens: { access_token: at } } = await login(srv.origin));
  });
  after(async () => { await srv?.cleanup(); });

  // [path, method used for bodies, extra headers]
  const targets = () => [
    ['/oauth2/token', 'POST', {}],
    ['/oauth2/revoke', 'POST', {}],
    ['/oauth2/userinfo', 'POST', { authorization: `Bearer ${at}` }],
    ['/_resolver/resolve', 'GET', {}],
    ['/oauth2/authorize', 'POST', {}],
    ['/oauth2/end_session', 'POST', {}],
  ];

  it('bodies over 64 KiB → 413 (Content-Length and chunked)', async () => {
    const c = collector();
    for (const [path, method, headers] of targets()) {
      for (const chunked of [false, true]) {
        const r = await raw(srv.origin, { method, path, headers: { ...FORM, ...headers }, body: bigForm(), chunked });
        c.check(() => {
          assert.equal(r.status, 413, `${method} ${path} 100 KiB ${chunked ? 'chunked' : 'content-length'}: got ${r.status} ${r.text.slice(0, 100)}`);
          if (API.has(path)) checkErrorBody(path, r, `${method} ${path} 413`);
        });
      }
    }
    c.done();
  });

  it('a body just under 64 KiB is accepted', async () => {
    const body = `grant_type=client_credentials&pad=${'a'.repeat(60 * 1024)}`;
    const r = await raw(srv.origin, {
      method: 'POST', path: '/oauth2/token', headers: { ...FORM, authorization: basicAuth('backend', BACKEND_SECRET) }, body,
    });
    assert.equal(r.status, 200, `60 KiB form: ${r.status} ${r.text.slice(0, 200)}`);
  });

  it('duplicate parameters → 400 invalid_request', async () => {
    const cases = [
      ['/oauth2/token', 'POST', 'grant_type=a&grant_type=b', {}],
      ['/oauth2/token', 'POST', 'grant_type=client_credentials&grant_type=client_credentials', { authorization: basicAuth('backend', BACKEND_SECRET) }],
      ['/oauth2/revoke', 'POST', 'token=a&token=b', {}],
      ['/oauth2/userinfo', 'POST', 'x=1&x=2', { authorization: `Bearer ${at}` }],
      ['/oauth2/authorize', 'POST', 'client_id=demo&client_id=demo&redirect_uri=http%3A%2F%2F127.0.0.1%3A4000%2Fcallback', {}],
      ['/oauth2/end_session', 'POST', 'state=a&state=b', {}],
    ];
    const c = collector();
    for (const [path, method, body, headers] of cases) {
      const r = await raw(srv.origin, { method, path, headers: { ...FORM, ...headers }, body });
      c.check(() => expect400(path, r, `${method} ${path} body ${body.slice(0, 40)}`));
    }
    const queries = [
      ['/oauth2/authorize', '?client_id=demo&client_id=demo&redirect_uri=http%3A%2F%2F127.0.0.1%3A4000%2Fcallback&response_type=code'],
      ['/oauth2/authorize', '?client_id=demo&redirect_uri=http%3A%2F%2F127.0.0.1%3A4000%2Fcallback&redirect_uri=http%3A%2F%2F127.0.0.1%3A4000%2Fcallback'],
      ['/oauth2/end_session', '?state=a&state=b'],
      ['/_resolver/resolve', '?strict=true&strict=false'],
      ['/oauth2/userinfo', '?x=1&x=2'],
    ];
    for (const [path, q] of queries) {
      const r = await raw(srv.origin, { path: `${path}${q}`, headers: path === '/oauth2/userinfo' ? { authorization: `Bearer ${at}` } : {} });
      c.check(() => {
        expect400(path, r, `GET ${path}${q}`);
        assert.equal(r.headers.location, undefined, `${path}: no redirect on duplicate params`);
      });
    }
    c.done();
  });

  it('invalid UTF-8 (%FF and raw 0xFF) and invalid percent-encoding → 400', async () => {
    const bodies = [
      ['%FF', (k) => Buffer.from(`${k}=%FF`)],
      ['raw 0xFF', (k) => Buffer.concat([Buffer.from(`${k}=`), Buffer.from([0xff, 0xfe])])],
      ['%ZZ', (k) => Buffer.from(`${k}=%ZZ`)],
      ['truncated %F', (k) => Buffer.from(`${k}=%F`)],
      ['overlong %C0%AF', (k) => Buffer.from(`${k}=%C0%AF`)],
    ];
    const fields = {
      '/oauth2/token': 'grant_type', '/oauth2/revoke': 'token', '/oauth2/userinfo': 'x', '/oauth2/authorize': 'client_id', '/oauth2/end_session': 'state',
    };
    const c = collector();
    for (const [path, key] of Object.entries(fields)) {
      for (const [what, mk] of bodies) {
        const headers = { ...FORM, ...(path === '/oauth2/userinfo' ? { authorization: `Bearer ${at}` } : {}) };
        const r = await raw(srv.origin, { method: 'POST', path, headers, body: mk(key) });
        c.check(() => expect400(path, r, `POST ${path} body ${key}=${what}`));
      }
    }
    const qfields = { ...fields, '/_resolver/resolve': 'strict' };
    delete qfields['/oauth2/token'];
    delete qfields['/oauth2/revoke'];
    for (const [path, key] of Object.entries(qfields)) {
      for (const enc of ['%FF', '%ZZ', '%C0%AF']) {
        const r = await raw(srv.origin, { path: `${path}?${key}=${enc}`, headers: path === '/oauth2/userinfo' ? { authorization: `Bearer ${at}` } : {} });
        c.check(() => expect400(path, r, `GET ${path}?${key}=${enc}`));
      }
      const rs = await rawSocket(srv.origin, Buffer.concat([
        Buffer.from(`GET ${path}?${key}=`), Buffer.from([0xff]),
        Buffer.from(` HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${path === '/oauth2/userinfo' ? `Authorization: Bearer ${at}\r\n` : ''}\r\n`),
      ]));
      if (TARGET === 'workers') {
        // The Workers runtime parses the request line itself and re-encodes a raw
        // non-ASCII byte as a valid UTF-8 percent-escape (the URL standard) before the
        // Worker runs: Latchkey receives a well-formed value and judges that. Such a
        // request must still never fail.
        c.check(() => assert.ok([200, 302, 400].includes(rs.status), `GET ${path}?${key}=<raw 0xFF>: ${rs.status} ${rs.text.slice(0, 100)}`));
      } else {
        c.check(() => assert.equal(rs.status, 400, `GET ${path}?${key}=<raw 0xFF>: ${rs.status} ${rs.text.slice(0, 100)}`));
      }
    }
    c.done();
  });

  it('wrong content type → 400 invalid_request', async () => {
    const j = await req(`${srv.origin}/oauth2/token`, { method: 'POST', json: { grant_type: 'client_credentials' }, basic: ['backend', BACKEND_SECRET] });
    expect400('/oauth2/token', j, 'JSON to /oauth2/token');
    const t = await req(`${srv.origin}/oauth2/token`, {
      method: 'POST', body: 'grant_type=client_credentials', headers: { 'content-type': 'text/plain' }, basic: ['backend', BACKEND_SECRET],
    });
    expect400('/oauth2/token', t, 'text/plain to /oauth2/token');
    const none = await raw(srv.origin, {
      method: 'POST', path: '/oauth2/token', headers: { authorization: basicAuth('backend', BACKEND_SECRET) }, body: 'grant_type=client_credentials',
    });
    expect400('/oauth2/token', none, 'no content type to /oauth2/token');
    const mp = await req(`${srv.origin}/oauth2/token`, { method: 'POST', body: (() => { const f = new FormData(); f.set('grant_type', 'client_credentials'); return f; })(), basic: ['backend', BACKEND_SECRET] });
    expect400('/oauth2/token', mp, 'multipart to /oauth2/token');
    const rj = await req(`${srv.origin}/oauth2/revoke`, { method: 'POST', json: { token: 'x' } });
    expect400('/oauth2/revoke', rj, 'JSON to /oauth2/revoke');
    // charset parameter is fine
    const ok = await req(`${srv.origin}/oauth2/token`, {
      method: 'POST', body: 'grant_type=client_credentials', headers: { 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' }, basic: ['backend', BACKEND_SECRET],
    });
    assert.equal(ok.status, 200, `form with charset: ${ok.status} ${ok.text}`);
  });

  it('wrong method → 405 with Allow', async () => {
    const cases = [
      ['/oauth2/token', ['GET', 'PUT', 'DELETE', 'PATCH']],
      ['/oauth2/revoke', ['GET', 'PUT', 'DELETE']],
      ['/oauth2/userinfo', ['PUT', 'DELETE']],
      ['/_resolver/resolve', ['POST', 'PUT', 'DELETE']],
      ['/oauth2/authorize', ['PUT', 'DELETE']],
      ['/oauth2/end_session', ['PUT', 'DELETE']],
      ['/oauth2/jwks', ['POST', 'PUT', 'DELETE']],
      ['/.well-known/openid-configuration', ['POST', 'PUT', 'DELETE']],
    ];
    for (const [path, methods] of cases) {
      for (const method of methods) {
        const r = await req(`${srv.origin}${path}`, { method });
        assert.equal(r.status, 405, `${method} ${path}: ${r.status}`);
        assert.ok(r.headers.get('allow'), `${method} ${path}: Allow header`);
        assert.ok(!r.headers.get('allow').split(/,\s*/).includes(method), `${method} ${path}: Allow does not list ${method}`);
        if (API.has(path)) checkErrorBody(path, r, `${method} ${path}`);
      }
    }
  });

  it('unknown paths → 404', async () => {
    for (const p of ['/nope', '/oauth2/nope', '/oauth2/token/extra', '/.well-known/nope', '/oauth2', '/_resolver', '/_resolver/resolve/x', '/%2e%2e/etc/passwd', '/oauth2/TOKEN']) {
      for (const method of ['GET', 'POST']) {
        const r = await req(`${srv.origin}${p}`, { method, ...(method === 'POST' ? { form: { a: 'b' } } : {}) });
        assert.equal(r.status, 404, `${method} ${p}: ${r.status}`);
        assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
      }
    }
  });

  it('API errors are JSON with "error"; authorize/end_session errors are HTML', async () => {
    const api = [
      await req(`${srv.origin}/oauth2/token`, { method: 'POST', form: { grant_type: 'nope', client_id: 'demo' } }),
      await req(`${srv.origin}/oauth2/revoke`, { method: 'POST', form: {} }),
    ];
    for (const r of api) {
      assert.equal(r.status, 400);
      assert.match(r.headers.get('content-type') ?? '', /application\/json/);
      assert.equal(typeof r.json().error, 'string');
    }
    const u = await req(`${srv.origin}/oauth2/userinfo`);
    assert.equal(u.status, 401);
    const html = [
      await req(`${srv.origin}/oauth2/authorize?client_id=nope`),
      await req(`${srv.origin}/oauth2/authorize`),
      await req(`${srv.origin}/oauth2/end_session?post_logout_redirect_uri=https%3A%2F%2Fevil.example`),
    ];
    for (const r of html) {
      assert.equal(r.status, 400, `${r.url}: ${r.status}`);
      assert.match(r.headers.get('content-type') ?? '', /text\/html/, r.url);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    }
  });

  it('every response carries X-Content-Type-Options: nosniff', async () => {
    const c = collector();
    const reqs = [
      ['GET', '/.well-known/openid-configuration'], ['GET', '/.well-known/oauth-authorization-server'], ['GET', '/oauth2/jwks'],
      ['GET', '/oauth2/authorize'], ['GET', '/oauth2/authorize?client_id=demo&redirect_uri=http%3A%2F%2F127.0.0.1%3A4000%2Fcallback&response_type=code&scope=openid&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGrSstw-cM&code_challenge_method=S256'],
      ['GET', '/oauth2/authorize?client_id=demo&redirect_uri=http%3A%2F%2F127.0.0.1%3A4000%2Fcallback&response_type=code&scope=openid'],
      ['POST', '/oauth2/token'], ['POST', '/oauth2/revoke'], ['GET', '/oauth2/userinfo'], ['GET', '/_resolver/resolve'],
      ['HEAD', '/_resolver/resolve'], ['GET', '/oauth2/end_session'], ['GET', '/nope'], ['DELETE', '/oauth2/token'],
      ['OPTIONS', '/oauth2/token'],
    ];
    for (const [method, p] of reqs) {
      const r = await req(`${srv.origin}${p}`, { method, headers: method === 'OPTIONS' ? { origin: 'http://127.0.0.1:4000', 'access-control-request-method': 'POST' } : {} });
      c.check(() => assert.equal(r.headers.get('x-content-type-options'), 'nosniff', `${method} ${p} (${r.status})`));
    }
    const big = await raw(srv.origin, { method: 'POST', path: '/oauth2/token', headers: FORM, body: bigForm() });
    c.check(() => assert.equal(big.headers['x-content-type-options'], 'nosniff', `413 (${big.status})`));
    c.done();
  });

  it('odd requests never produce a 5xx or a hang', async () => {
    const odd = [
      { path: `/oauth2/authorize?${'x'.repeat(6000)}=1` },
      { path: '/oauth2/authorize?client_id=demo&redirect_uri=%00' },
      { path: '/oauth2/authorize?client_id=%00&redirect_uri=' },
      { path: '/oauth2/end_session?id_token_hint=eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.' },
      { path: '/oauth2/end_session?id_token_hint=....' },
      { path: '/oauth2/end_session?id_token_hint=%E2%82%AC' },
      { path: '/_resolver/resolve', headers: { authorization: 'Bearer ' } },
      { path: '/_resolver/resolve', headers: { authorization: 'Bearer a.b.c.d.e' } },
      { path: '/_resolver/resolve', headers: { authorization: `Bearer ${'eyJ'.repeat(3000)}` } },
      { path: '/_resolver/resolve', headers: { authorization: 'bearer' } },
      { path: '/_resolver/resolve', headers: { cookie: 'session=' } },
      { path: '/_resolver/resolve', headers: { cookie: `session=${'.'.repeat(100)}` } },
      { path: '/_resolver/resolve', headers: { cookie: 'session=a; session=b' } },
      { path: '/oauth2/userinfo', headers: { authorization: 'Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6IngifQ.e30.AAAA' } },
      { method: 'POST', path: '/oauth2/token', headers: { ...FORM, authorization: 'Basic !!!' }, body: 'grant_type=client_credentials' },
      { method: 'POST', path: '/oauth2/token', headers: { ...FORM, authorization: `Basic ${Buffer.from('nocolon').toString('base64')}` }, body: 'grant_type=client_credentials' },
      { method: 'POST', path: '/oauth2/token', headers: { ...FORM, authorization: `Basic ${Buffer.from([0xff, 0x3a, 0xff]).toString('base64')}` }, body: 'grant_type=client_credentials' },
      { method: 'POST', path: '/oauth2/token', headers: FORM, body: '&&&===&' },
      { method: 'POST', path: '/oauth2/token', headers: FORM, body: 'grant_type=refresh_token&client_id=demo&refresh_token=' },
      { method: 'POST', path: '/oauth2/token', headers: FORM, body: 'grant_type=refresh_token&client_id=demo&refresh_token=....' },
      { method: 'POST', path: '/oauth2/token', headers: FORM, body: 'grant_type=authorization_code&client_id=demo&code=&redirect_uri=&code_verifier=' },
      { method: 'POST', path: '/oauth2/revoke', headers: FORM, body: `token=${'a.'.repeat(1000)}` },
    ];
    for (const o of odd) {
      const r = await raw(srv.origin, o);
      assert.ok(r.status < 500, `${o.method ?? 'GET'} ${o.path.slice(0, 60)}: ${r.status} ${r.text.slice(0, 200)}`);
    }
    // a 200 KiB header: refused with a 4xx (431/400), never 5xx
    const hdr = await raw(srv.origin, { path: '/_resolver/resolve', headers: { cookie: `session=${'a'.repeat(200 * 1024)}` } }).catch((e) => ({ status: 0, error: e }));
    assert.ok(hdr.status >= 400 && hdr.status < 500, `200 KiB cookie header: ${hdr.status} ${hdr.error?.message ?? ''}`);
    // a body shorter than its Content-Length, then the client goes away: no crash
    await rawSocket(srv.origin, Buffer.from('POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\ngrant_type=x'), { timeoutMs: 1500 })
      .catch(() => {});
    // garbage instead of HTTP
    const g = await rawSocket(srv.origin, Buffer.from('\x00\x01\x02 hello\r\n\r\n'), { timeoutMs: 3000 }).catch(() => ({ status: 400 }));
    // (Under wrangler dev, the local proxy in front of workerd answers a request that is
    // not HTTP with 501 before any Worker runs; on Cloudflare the edge refuses it.)
    assert.ok(g.status < 500 || (TARGET === 'workers' && g.status === 501), `garbage request line: ${g.status}`);
    // the server is still healthy
    assert.equal((await req(`${srv.origin}/oauth2/jwks`)).status, 200, 'still serving after odd requests');
  });
});
