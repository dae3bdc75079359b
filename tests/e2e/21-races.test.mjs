// Races over HTTP: 200 concurrent refreshes of one refresh token, and refreshes racing
// a revocation of their session.
//
// How "the session is still valid" is checked soundly after a refresh race: every
// racer presented the same token t0, so the first rotated and the others were retries
// (t0 stays the "previous" token and each retry replaces the unused current one).
// Presenting any racer's token afterwards could be reuse and would revoke the session,
// so the black-box check only presents t0 again (still a retry: no successor was ever
// used) and then that fresh successor; the white-box check reads the session row (read
// only, beside the running server) to see that exactly one racer's token is current.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  startServer, login, refresh, revoke, resolve, decodeJwt, verifyJwt, getJson, sleep, sqliteQuery,
} from './harness.mjs';

const sha256 = (s) => crypto.createHash('sha256').update(s).digest('hex');

async function valid(origin, bearer) {
  return (await resolve(origin, { bearer })).ag['x-authgear-session-valid'];
}

function histogram(results) {
  const h = {};
  for (const r of results) {
    const key = r.error ? `error ${r.error}` : `${r.status}${r.status !== 200 ? ` ${r.text.slice(0, 80)}` : ''}`;
    h[key] = (h[key] ?? 0) + 1;
  }
  return JSON.stringify(h);
}

describe('races over HTTP', { timeout: 180000 }, () => {
  let srv;
  let jwks;
  before(async () => {
    srv = await startServer();
    jwks = await getJson(srv.url('/oauth2/jwks'));
  });
  after(async () => { await srv?.cleanup(); });

  it('200 concurrent refreshes of one token: no 5xx, every token of the same session, the session stays valid', async () => {
    const l = await login(srv.origin);
    const t0 = l.tokens.refresh_token;
    const sid = t0.split('.')[0];
    assert.equal(decodeJwt(l.tokens.access_token).payload.sid, sid, 'the refresh token names its session');

    const results = await Promise.all(Array.from({ length: 200 }, () => refresh(srv.origin, t0)));
    for (const r of results) assert.ok(r.status < 500, `no 5xx: ${histogram(results)}`);
    // Every racer presented t0: the first rotates, every other one is a retry of the
    // previous token while its successor is unused, which the contract answers with a
    // fresh successor. So all 200 succeed.
    assert.ok(results.every((r) => r.status === 200), `every concurrent refresh succeeds: ${histogram(results)}`);
    const issued = results.map((r) => r.json());
    for (const t of issued) {
      assert.equal(t.refresh_token.split('.')[0], sid, 'every new refresh token belongs to the same session');
      const at = decodeJwt(t.access_token);
      assert.equal(at.payload.sid, sid, 'every access token belongs to the same session');
      assert.equal(at.payload.sub, srv.userIds.alice);
      assert.ok(verifyJwt(t.access_token, jwks), 'signed by the published key');
    }
    assert.equal(new Set(issued.map((t) => t.refresh_token)).size, 200, 'every refresh token is distinct');
    assert.equal(new Set(issued.map((t) => decodeJwt(t.access_token).payload.jti)).size, 200, 'every access token is distinct');

    // No racer was revoked or lost the session: every access token resolves valid.
    const resolved = await Promise.all(issued.map((t) => valid(srv.origin, t.access_token)));
    assert.deepEqual([...new Set(resolved)], ['true'], 'every access token from the race resolves valid');
    assert.equal(await valid(srv.origin, l.tokens.access_token), 'true', 'the original access token too');

    // White box: exactly one racer's token is current, t0 is the previous one, and every
    // refresh applied exactly one swap (version 0 at creation).
    const rows = await sqliteQuery(path.join(srv.dataDir, 'latchkey.sqlite3'),
      'SELECT version, revoked_at, refresh FROM sessions WHERE id = ?', [sid]);
    assert.equal(rows.length, 1, 'one session row');
    const [version, revokedAt, refreshJson] = rows[0];
    const state = JSON.parse(refreshJson);
    assert.equal(revokedAt, null, 'not revoked');
    assert.equal(version, 200, 'one swap per refresh');
    assert.equal(state.previous, sha256(t0), 't0 is the previous token');
    const hashes = issued.map((t) => sha256(t.refresh_token));
    assert.equal(hashes.filter((h) => h === state.current).length, 1, 'exactly one live successor, and it is one of the issued tokens');
    for (const h of state.retired) assert.ok(hashes.includes(h), 'every retired token is one the race replaced');

    // Black box: t0 again is still a retry, its fresh successor rotates normally.
    const retry = await refresh(srv.origin, t0);
    assert.equal(retry.status, 200, `t0 after the race is a retry: ${retry.text}`);
    const next = await refresh(srv.origin, retry.json().refresh_token);
    assert.equal(next.status, 200, `the fresh successor rotates: ${next.text}`);
    assert.equal(await valid(srv.origin, next.json().access_token), 'true');
    // Every racer token is dead now. One that fell off the bounded reuse history (64
    // retired tokens) is merely invalid; the racer that was current until the retry
    // above is remembered, so presenting it is reuse and revokes the session.
    const forgotten = issued.find((t) => { const h = sha256(t.refresh_token); return h !== state.current && !state.retired.includes(h); });
    if (forgotten) {
      const r = await refresh(srv.origin, forgotten.refresh_token);
      assert.equal(r.status, 400, `a racer token replaced long ago: ${r.status} ${r.text}`);
      assert.equal(r.json().error, 'invalid_grant');
    }
    const wasCurrent = issued.find((t) => sha256(t.refresh_token) === state.current);
    const reuse = await refresh(srv.origin, wasCurrent.refresh_token);
    assert.equal(reuse.status, 400, `the replaced racer token is reuse: ${reuse.status} ${reuse.text}`);
    assert.equal(reuse.json().error, 'invalid_grant');
    assert.equal(await valid(srv.origin, next.json().access_token), 'false', 'reuse revoked the session');
    for (const t of issued.slice(0, 20)) assert.equal(await valid(srv.origin, t.access_token), 'false', 'with every token of it');
  });

  for (const [how, pick] of [
    ['the refresh token', (l) => l.tokens.refresh_token],
    ['an access token of the session', (l) => l.tokens.access_token],
  ]) {
    it(`30 refreshes racing a revocation by ${how}: every refresh started after the revoke's 200 fails, every access token dies`, async () => {
      const problems = [];
      let overlapping = 0;
      for (let round = 0; round < 4; round++) {
        const l = await login(srv.origin);
        const t0 = l.tokens.refresh_token;
        const recs = [];
        const launch = () => {
          const rec = { start: performance.now() };
          rec.done = refresh(srv.origin, t0).then(
            (r) => { rec.end = performance.now(); rec.status = r.status; rec.text = r.text; rec.r = r; },
            (e) => { rec.end = performance.now(); rec.error = e.message; },
          );
          recs.push(rec);
        };
        // Make sure the race is real: some refreshes succeed before the revocation.
        for (let i = 0; i < 5; i++) launch();
        await recs[0].done;
        assert.equal(recs[0].status, 200, `round ${round}: the first refresh succeeds: ${recs[0].text}`);
        for (let i = 5; i < 15; i++) { launch(); await sleep(i % 3); }
        const rv = { start: performance.now() };
        rv.done = revoke(srv.origin, pick(l)).then((r) => { rv.end = performance.now(); rv.r = r; });
        for (let i = 15; i < 30; i++) { launch(); await sleep(i % 3); }
        await rv.done;
        assert.equal(rv.r.status, 200, `round ${round}: revoke ${rv.r.status} ${rv.r.text}`);
        // Refreshes certainly started after the revocation was answered.
        for (let i = 0; i < 10; i++) launch();
        await Promise.all(recs.map((r) => r.done));

        const after = recs.filter((r) => r.start > rv.end);
        overlapping += recs.filter((r) => r.start < rv.start && r.end > rv.start).length;
        assert.ok(after.length >= 10, `round ${round}: refreshes started after the revoke's 200`);
        for (const r of recs) {
          if (r.error || r.status >= 500) problems.push(`round ${round}: a refresh got ${r.error ?? `${r.status} ${r.text}`}`);
        }
        for (const r of after) {
          if (r.status !== 400 || r.r.json().error !== 'invalid_grant') {
            problems.push(`round ${round}: a refresh started ${(r.start - rv.end).toFixed(1)} ms after the revoke's 200 got ${r.status} ${r.text}`);
          }
        }
        const issued = recs.filter((r) => r.status === 200).map((r) => r.r.json());
        assert.ok(issued.length >= 1, `round ${round}: some refreshes succeeded before the revocation`);
        for (const t of [l.tokens, ...issued]) {
          const v = await valid(srv.origin, t.access_token);
          if (v !== 'false') problems.push(`round ${round}: an access token issued before the revocation resolves ${v}`);
        }
        for (const t of [l.tokens, ...issued]) {
          const r = await refresh(srv.origin, t.refresh_token);
          if (r.status !== 400) problems.push(`round ${round}: a refresh token issued in the race still refreshes (${r.status})`);
        }
        // Timing-independent end state: the session is revoked for good.
        const last = await refresh(srv.origin, t0);
        assert.equal(last.status, 400, `round ${round}: t0 after the race`);
      }
      assert.ok(overlapping > 0, 'some refreshes were in flight when a revocation was sent (the race happened)');
      assert.deepEqual(problems, [], problems.join('\n'));
    });
  }
});
