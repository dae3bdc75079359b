// The store conformance suite against real Durable Objects in workerd: the Worker
// built with `--features conformance` (scripts/build-worker build-conformance
// --features conformance) runs latchkey_store::conformance::run_async_part against its
// own LATCHKEY_OBJECTS namespace under wrangler dev: every check of the suite, the 50-
// and 200-way concurrent refresh, the 20- and 100-way code redemption and five rounds
// of 16 refreshers racing a revocation, one part per request (workerd holds every
// subrequest of a request until it ends, and the whole suite in one request runs out
// of file descriptors), in order, against one store. A part answers 200 only if every
// check passed; a failed check panics inside the Worker, and the request fails with the
// check's message in the log printed here.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { startWorker, REPO } from '../e2e/lib/workers.mjs';
import { freePort } from '../e2e/lib/net.mjs';
import { runCli } from '../e2e/harness.mjs';

const PARTS = (process.env.LATCHKEY_CONFORMANCE_PARTS || ['sequential', 'refresh:50', 'refresh:200', 'redeem:20', 'redeem:100',
  'revoke:0', 'revoke:1', 'revoke:2', 'revoke:3', 'revoke:4'].join(',')).split(',');
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

  const run = crypto.randomBytes(6).toString('hex');
  for (const part of PARTS) {
    it(`part ${part}: every check passes`, async () => {
      const res = await fetch(`http://127.0.0.1:${port}/__conformance?run=${run}&part=${part}`, { method: 'POST', signal: AbortSignal.timeout(300000) })
        .catch((e) => ({ status: 0, text: async () => String(e) }));
      const body = await res.text();
      assert.equal(res.status, 200, `conformance part ${part} failed (${res.status}): ${body}\n--- worker log ---\n${worker.logs().slice(-20000)}`);
      assert.match(body, /every check passed/);
    });
  }

});
