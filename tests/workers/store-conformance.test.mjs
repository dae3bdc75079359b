// The store conformance suite against real Durable Objects in workerd: the Worker
// built with `--features conformance` (scripts/build-worker build-conformance
// --features conformance) runs latchkey_store::conformance::run_all_async_sized — every
// check of the suite, with the 50-way concurrent refresh, the 20-way code redemption
// and two rounds of 16 refreshers racing a revocation (RACES below; local workerd
// keeps a file open per Durable Object and runs out of descriptors with the native
// suite's 200-way sizes, which the in-process run of the same logic covers) — against its own
// LATCHKEY_OBJECTS namespace under wrangler dev, and answers 200 only if every check
// passed. A failed check panics inside the Worker: the request fails and the check's
// message is in the log printed here.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { startWorker, REPO } from '../e2e/lib/workers.mjs';
import { freePort } from '../e2e/lib/net.mjs';
import { runCli } from '../e2e/harness.mjs';

const RACES = process.env.LATCHKEY_CONFORMANCE_RACES || 'refresh=50&redeem=20&revoke_rounds=2';
const BUILD = process.env.LATCHKEY_WORKER_CONFORMANCE_BUILD || path.join(REPO, 'functions', 'worker', 'build-conformance');

describe('store conformance on Durable Objects (workerd)', () => {
  let dir;
  let worker;
  let port;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'latchkey-do-conformance-'));
    port = await freePort();
    // A valid deployment made by `latchkey init`, so that /healthz answers and the
    // harness sees the Worker up; the suite itself uses only the Durable Objects.
    const init = await runCli(['init', '--data-dir', dir, '--public-origin', `http://127.0.0.1:${port}`]);
    assert.equal(init.code, 0, `latchkey init: ${init.stderr}`);
    worker = await startWorker({ port, dataDir: dir, build: BUILD });
  });
  after(async () => {
    if (worker) await worker.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('passes every check of the suite, races included', async () => {
    const run = crypto.randomBytes(6).toString('hex');
    const res = await fetch(`http://127.0.0.1:${port}/__conformance?run=${run}&${RACES}`, { method: 'POST', signal: AbortSignal.timeout(300000) })
      .catch((e) => ({ status: 0, text: async () => String(e) }));
    const body = await res.text();
    assert.equal(res.status, 200, `conformance run failed (${res.status}): ${body}\n--- worker log ---\n${worker.logs()}`);
    assert.match(body, /every check passed/);
  });

});
