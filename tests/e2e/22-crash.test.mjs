// Crash safety: SIGKILL the server in the middle of a load of logins (through the
// login form), code redemptions, refreshes and revocations, restart it on the same data
// directory, and check that every answer the server gave before it died still holds.
// Repeated at three moments of the load, on the same data directory (crash after crash).
//
// What is accepted, operation by operation (only 2xx answers are promises):
// - a login answered 302 with a session cookie: the cookie resolves valid afterwards;
// - a code redemption answered 200: its session exists; a replay of the code after the
//   restart is refused and revokes it (the redemption itself survived the crash);
// - a refresh answered 200: its refresh token is the newest of the chain we know, and
//   presenting it after the restart must work. If the chain's last refresh was in
//   flight at the kill (no answer), it may or may not have rotated; either way the
//   newest token we saw is then the current or the previous token with an unused
//   successor, so presenting it works (a retry) — that is what we check;
// - a revocation answered 200: still in effect (access tokens false, refresh refused);
//   a revocation in flight at the kill may or may not have happened, but the session
//   must then be consistently alive or consistently revoked;
// - operations whose answer was lost in the kill (logins, redemptions) promise nothing
//   and are not checked.
// Nothing may answer 5xx before the kill. The SQLite file passes
// `PRAGMA integrity_check` both as the crash left it (checked on a copy, so the
// restarted server recovers the original itself) and after a clean stop.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, rm, access } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  startServer, Browser, authorizeUrl, pkce, randomString, redeemCode, refresh, revoke, resolve, sleep, sqliteIntegrityCheck,
  DEMO_REDIRECT, DEFAULT_PASSWORD,
} from './harness.mjs';

const USERS = ['u0', 'u1', 'u2', 'u3', 'u4'];
const WORKERS = 6;
// The load runs until the kill; this only bounds a load that never gets going.
const KILL_DEADLINE_MS = 30000;
const REQ_TIMEOUT_MS = 10000;

async function valid(origin, cred) {
  return (await resolve(origin, cred)).ag['x-authgear-session-valid'];
}

const pickOne = (xs) => xs[Math.floor(Math.random() * xs.length)];

describe('crash safety (SIGKILL under load)', { timeout: 240000 }, () => {
  let srv;
  let db;
  const ledger = { browsers: [], chains: [], lostLogins: 0, lostRedemptions: 0 };

  before(async () => {
    srv = await startServer({ users: USERS.map((username) => ({ username })) });
    db = path.join(srv.dataDir, 'latchkey.sqlite3');
  });
  after(async () => { await srv?.cleanup(); });

  /** One login through the form and its code redemption, recorded in the ledger. */
  async function loginOp(state) {
    const username = pickOne(USERS);
    const b = new Browser(srv.origin);
    const { verifier, challenge } = pkce();
    const url = authorizeUrl(srv.origin, {
      response_type: 'code', client_id: 'demo', redirect_uri: DEMO_REDIRECT, scope: 'openid offline_access',
      state: randomString(), code_challenge: challenge, code_challenge_method: 'S256',
    });
    const page = await b.go(url, { timeoutMs: REQ_TIMEOUT_MS });
    if (page.status !== 200) { state.problems.push(`login page: ${page.status}`); return; }
    let res;
    try {
      res = await b.submit(page, { username, password: DEFAULT_PASSWORD });
    } catch (e) {
      ledger.lostLogins++;
      throw e;
    }
    if (res.status !== 302 || !b.cookie('session')) { state.problems.push(`login: ${res.status} ${res.text.slice(0, 120)}`); return; }
    ledger.browsers.push({ cookie: b.cookie('session'), username });
    const code = new URL(res.location).searchParams.get('code');
    const a = { code, verifier, redirectUri: DEMO_REDIRECT, clientId: 'demo' };
    let t;
    try {
      t = await redeemCode(srv.origin, a);
    } catch (e) {
      ledger.lostRedemptions++;
      throw e;
    }
    if (t.status !== 200) { state.problems.push(`code redemption: ${t.status} ${t.text}`); return; }
    const tokens = t.json();
    ledger.chains.push({
      sid: tokens.refresh_token.split('.')[0], username, code: a, latest: tokens, accessTokens: [tokens.access_token],
      revoked: 'no', lostRefresh: false, busy: false,
    });
  }

  async function refreshOp(state, chain) {
    chain.busy = true;
    try {
      let r;
      try {
        r = await refresh(srv.origin, chain.latest.refresh_token);
      } catch (e) {
        chain.lostRefresh = true; // no answer: it may have rotated
        throw e;
      }
      if (r.status !== 200) { state.problems.push(`refresh of a live chain: ${r.status} ${r.text}`); chain.broken = true; return; }
      chain.latest = r.json();
      chain.accessTokens.push(chain.latest.access_token);
      chain.lostRefresh = false;
    } finally {
      chain.busy = false;
    }
  }

  async function revokeOp(state, chain) {
    chain.busy = true;
    const token = Math.random() < 0.5 ? chain.latest.refresh_token : chain.latest.access_token;
    let r;
    try {
      r = await revoke(srv.origin, token);
    } catch (e) {
      chain.revoked = 'maybe';
      throw e;
    }
    if (r.status !== 200) { state.problems.push(`revoke: ${r.status} ${r.text}`); chain.broken = true; return; }
    chain.revoked = 'yes';
  }

  async function worker(state) {
    while (!state.dead && performance.now() < state.until) {
      const live = ledger.chains.filter((c) => c.revoked === 'no' && !c.busy && !c.broken && !c.lostRefresh);
      const roll = Math.random();
      try {
        if (live.length < 3 || roll < 0.2) await loginOp(state);
        else if (roll < 0.65) await refreshOp(state, pickOne(live));
        else if (roll < 0.85) await revokeOp(state, pickOne(live));
        else {
          const c = pickOne(live);
          c.busy = true;
          try {
            const r = await resolve(srv.origin, { bearer: c.latest.access_token });
            if (r.status !== 200 || r.ag['x-authgear-session-valid'] !== 'true') state.problems.push(`resolve of a live chain: ${r.status} ${JSON.stringify(r.ag)}`);
          } finally {
            c.busy = false;
          }
        }
        state.ops++;
      } catch (e) {
        if (!state.dead) state.problems.push(`request failed before the kill: ${e.message}`);
        state.lost++;
      }
    }
  }

  /**
   * Runs the load and SIGKILLs the server once it has run `minMs` and answered `minOps`
   * operations (so the moment is the same stage of the load on a slow or busy machine),
   * then waits for the workers.
   */
  async function loadAndKill({ minMs, minOps }) {
    const started = performance.now();
    const state = { until: started + KILL_DEADLINE_MS, dead: false, problems: [], ops: 0, lost: 0 };
    const workers = Array.from({ length: WORKERS }, () => worker(state));
    while (performance.now() - started < minMs || state.ops < minOps) {
      if (performance.now() > state.until - 1000) break;
      await sleep(10);
    }
    state.killedAt = performance.now() - started;
    const exited = srv.handle.exited;
    state.dead = true;
    srv.kill('SIGKILL');
    const { signal } = await exited;
    assert.equal(signal, 'SIGKILL', 'the server was killed');
    await Promise.all(workers);
    await srv.stop(); // collects the log; the process is gone already
    return state;
  }

  async function integrityOfCrashImage() {
    // Check a copy, so that the restarted server recovers the original WAL itself.
    const dir = await mkdtemp(path.join(os.tmpdir(), 'latchkey-crash-image-'));
    try {
      for (const suffix of ['', '-wal', '-shm']) {
        try { await access(db + suffix); } catch { continue; }
        await copyFile(db + suffix, path.join(dir, `latchkey.sqlite3${suffix}`));
      }
      return await sqliteIntegrityCheck(path.join(dir, 'latchkey.sqlite3'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Every promise of the ledger, checked against the restarted server. */
  async function checkLedger(round) {
    const problems = [];
    for (const b of ledger.browsers) {
      const v = await valid(srv.origin, { cookie: `session=${b.cookie}` });
      if (v !== 'true') problems.push(`round ${round}: a session cookie answered 302 before the crash resolves ${v}`);
    }
    for (const c of ledger.chains) {
      if (c.broken) continue; // already reported as a problem of the load
      const what = `round ${round}: chain ${c.sid} (revoked: ${c.revoked}, refresh lost: ${c.lostRefresh})`;
      if (c.revoked === 'yes') {
        for (const at of c.accessTokens) {
          const v = await valid(srv.origin, { bearer: at });
          if (v !== 'false') problems.push(`${what}: revoked with a 200 answer, but an access token resolves ${v}`);
        }
        const r = await refresh(srv.origin, c.latest.refresh_token);
        if (r.status !== 400) problems.push(`${what}: revoked with a 200 answer, but its refresh token gives ${r.status}`);
        continue;
      }
      if (c.revoked === 'maybe') {
        const v = await valid(srv.origin, { bearer: c.latest.access_token });
        const r = await refresh(srv.origin, c.latest.refresh_token);
        const alive = v === 'true';
        if (alive !== (r.status === 200)) problems.push(`${what}: inconsistent after a lost revocation: resolves ${v}, refresh ${r.status}`);
        if (r.status !== 200 && r.status !== 400) problems.push(`${what}: refresh after a lost revocation: ${r.status}`);
        c.revoked = alive ? 'no' : 'yes';
        if (alive) { c.latest = r.json(); c.accessTokens.push(c.latest.access_token); c.lostRefresh = false; }
        continue;
      }
      for (const at of c.accessTokens) {
        const v = await valid(srv.origin, { bearer: at });
        if (v !== 'true') { problems.push(`${what}: an access token issued before the crash resolves ${v}`); break; }
      }
      const r = await refresh(srv.origin, c.latest.refresh_token);
      if (r.status !== 200) { problems.push(`${what}: the newest refresh token we saw gives ${r.status} ${r.text}`); c.broken = true; continue; }
      c.latest = r.json();
      c.accessTokens.push(c.latest.access_token);
      c.lostRefresh = false;
      const r2 = await refresh(srv.origin, c.latest.refresh_token);
      if (r2.status !== 200) { problems.push(`${what}: the chain does not continue after the crash: ${r2.status}`); c.broken = true; continue; }
      c.latest = r2.json();
      c.accessTokens.push(c.latest.access_token);
    }
    // A redemption answered 200 survived: replaying its code is refused and revokes.
    const victim = ledger.chains.find((c) => c.revoked === 'no' && !c.broken && !c.replayed);
    if (victim) {
      victim.replayed = true;
      const replay = await redeemCode(srv.origin, victim.code);
      if (replay.status !== 400) problems.push(`round ${round}: a code redeemed before the crash redeems again: ${replay.status}`);
      const v = await valid(srv.origin, { bearer: victim.latest.access_token });
      if (v !== 'false') problems.push(`round ${round}: the replay did not revoke what the code issued (${v})`);
      victim.revoked = 'yes';
    }
    return problems;
  }

  for (const [round, moment] of [[1, { minMs: 300, minOps: 5 }], [2, { minMs: 1000, minOps: 15 }], [3, { minMs: 1800, minOps: 30 }]]) {
    it(`SIGKILL at least ${moment.minMs} ms and ${moment.minOps} answers into the load: every 2xx answer survives the restart, the file is intact`, async () => {
      if (!srv.handle) await srv.start();
      // A few sessions first, so that refreshes and revocations run from the first
      // millisecond of the load, beside new logins.
      const seed = { problems: [] };
      await Promise.all([1, 2, 3, 4].map(() => loginOp(seed)));
      assert.deepEqual(seed.problems, [], 'seed logins');
      const before = { browsers: ledger.browsers.length, chains: ledger.chains.length };
      const state = await loadAndKill(moment);
      assert.deepEqual(state.problems, [], `problems during the load: ${state.problems.join('\n')}`);
      assert.ok(state.ops >= moment.minOps, `the load ran (${state.ops} operations in ${state.killedAt.toFixed(0)} ms before the kill)`);
      assert.ok(ledger.chains.slice(before.chains - 4).some((c) => c.accessTokens.length > 1 || c.revoked !== 'no'),
        'refreshes or revocations were answered before the kill');
      assert.ok(state.lost >= 1, `the kill hit requests in flight (${state.lost} lost)`);

      assert.deepEqual(await integrityOfCrashImage(), ['ok'], 'integrity_check of the file as the crash left it');
      await srv.start();
      const problems = await checkLedger(round);
      assert.deepEqual(problems, [], problems.join('\n'));
      // the server works normally after the crash
      const fresh = await (async () => { const s = { problems: [] }; await loginOp(s); return s; })();
      assert.deepEqual(fresh.problems, [], 'a login after the restart');

      const stopped = await srv.stop();
      assert.equal(stopped.code, 0, 'a clean stop after the checks');
      assert.deepEqual(await sqliteIntegrityCheck(db), ['ok'], 'integrity_check after a clean stop');
    });
  }
});
