// Observability: on the local server, Prometheus metrics on a listener of their own
// (off unless --metrics-listen); on every target, an access line per request with the
// endpoint and the outcome (valid/invalid resolve, refresh reuse, rate limiting, store
// errors) for the platform's log tools to aggregate.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, baseConfig, GENEROUS_RATE_LIMITS, login, refresh, resolve, req, freePort, sleep, tokenRequest,
  BACKEND_SECRET, TARGET,
} from './harness.mjs';

/** The value of one series in a Prometheus text exposition. */
function series(text, name) {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

async function accessLine(srv, predicate) {
  for (let i = 0; i < 50; i += 1) {
    const line = srv.logs().split('\n').filter((l) => l.includes('"request"') && l.includes('"status"')).find(predicate);
    if (line) return JSON.parse(line.slice(line.indexOf('{')));
    await sleep(100);
  }
  throw new Error(`no such access line in:\n${srv.logs().slice(-3000)}`);
}

describe('metrics and access lines', { timeout: 180000 }, () => {
  let srv;
  let metricsPort;
  before(async () => {
    metricsPort = await freePort();
    srv = await startServer({
      // Two client-credentials grants a minute: the third is rate limited.
      config: (origin) => baseConfig(origin, {
        rate_limits: { ...GENEROUS_RATE_LIMITS, client_credentials_per_client: { limit: 2, window_seconds: 60 } },
      }),
      serveArgs: TARGET === 'local'
        ? ['--log-format', 'json', '--metrics-listen', `127.0.0.1:${metricsPort}`]
        : ['--log-format', 'json'],
      serveEnv: { LATCHKEY_LOG: 'info' },
    });
  });
  after(async () => { await srv?.cleanup(); });

  it('every access line names the endpoint and the outcome', async () => {
    const l = await login(srv.origin);
    const cookie = `session=${l.browser.cookie('session')}`;
    await resolve(srv.origin, { cookie, headers: { 'x-request-id': 'metrics-valid-1' } });
    await resolve(srv.origin, { bearer: 'not-a-token', headers: { 'x-request-id': 'metrics-invalid-1' } });
    const valid = await accessLine(srv, (x) => x.includes('metrics-valid-1'));
    const fields = valid.fields ?? valid;
    assert.equal(fields.endpoint, '/_resolver/resolve');
    assert.equal(fields.outcome, 'resolve_valid');
    const invalid = await accessLine(srv, (x) => x.includes('metrics-invalid-1'));
    assert.equal((invalid.fields ?? invalid).outcome, 'resolve_invalid');
    // Rate limiting shows as an outcome too.
    let limited;
    for (let i = 0; i < 4 && !limited; i += 1) {
      const r = await tokenRequest(srv.origin, { grant_type: 'client_credentials' }, { basic: ['backend', BACKEND_SECRET] });
      if (r.status === 429) limited = r.headers.get('x-request-id');
    }
    assert.ok(limited, 'the token endpoint rate-limits');
    const line = await accessLine(srv, (x) => x.includes(limited));
    assert.equal((line.fields ?? line).outcome, 'rate_limited');
    assert.equal((line.fields ?? line).endpoint, '/oauth2/token');
  });

  if (TARGET === 'local') {
    it('serves Prometheus metrics on their own listener only', async () => {
      const before = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const l = await login(srv.origin);
      const cookie = `session=${l.browser.cookie('session')}`;
      for (let i = 0; i < 5; i += 1) await resolve(srv.origin, { cookie });
      await resolve(srv.origin, { bearer: 'nope' });
      await resolve(srv.origin, {});
      const r = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
      const text = await r.text();
      const delta = (name) => series(text, name) - (series(before, name) ?? 0);
      assert.equal(delta('latchkey_outcomes_total{outcome="resolve_valid"}'), 5);
      assert.equal(delta('latchkey_outcomes_total{outcome="resolve_invalid"}'), 1);
      assert.equal(delta('latchkey_outcomes_total{outcome="resolve_anonymous"}'), 1);
      assert.ok(series(text, 'latchkey_outcomes_total{outcome="rate_limited"}') >= 1);
      assert.equal(delta('latchkey_requests_total{endpoint="/_resolver/resolve",status="2xx"}'), 7);
      const count = series(text, 'latchkey_request_duration_seconds_count{endpoint="/_resolver/resolve"}');
      const inf = series(text, 'latchkey_request_duration_seconds_bucket{endpoint="/_resolver/resolve",le="+Inf"}');
      assert.equal(count, inf, 'the histogram counts every request');
      assert.ok(series(text, 'latchkey_request_duration_seconds_sum{endpoint="/_resolver/resolve"}') > 0);
      assert.match(text, /^latchkey_build_info\{version="[^"]+"\} 1$/m);
      // A random path does not grow the label set.
      await req(`${srv.origin}/no/such/${Math.random()}`);
      const after = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      assert.ok(series(after, 'latchkey_requests_total{endpoint="other",status="4xx"}') >= 1);
      assert.ok(!/no\/such/.test(after));
      // Not on the public listener; nothing else on the metrics one.
      assert.equal((await req(`${srv.origin}/metrics`)).status, 404);
      assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/`)).status, 404);
    });

    it('counts refresh-token reuse', async () => {
      const before = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const l = await login(srv.origin);
      const next = await refresh(srv.origin, l.tokens.refresh_token);
      assert.equal((await refresh(srv.origin, next.json().refresh_token)).status, 200);
      assert.equal((await refresh(srv.origin, l.tokens.refresh_token)).status, 400, 'the first token again: reuse');
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      const name = 'latchkey_outcomes_total{outcome="refresh_reuse_detected"}';
      assert.equal(series(text, name) - series(before, name), 1);
      for (const o of ['store_error', 'unavailable']) {
        assert.equal(series(text, `latchkey_outcomes_total{outcome="${o}"}`), 0, `${o}: a series from the start`);
      }
    });
  }
});
