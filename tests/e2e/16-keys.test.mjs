// Signing-key rotation through the secrets file: every key in `oauth.keys` is
// published, the first one signs, tokens signed by a key that is still
// published keep working, and removing a key retires its tokens.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  startServer, runCli, login, resolve, getJson, decodeJwt, verifyJwt, toYaml, BACKEND_SECRET, refresh,
} from './harness.mjs';

/** The private JWKs of a secrets file (each written as a one-line JSON flow mapping, or a block). */
function keysOf(text) {
  const keys = [];
  for (const line of text.split('\n')) {
    const m = line.match(/^\s*-\s*(\{.*"kty".*\})\s*$/);
    if (m) keys.push(JSON.parse(m[1]));
  }
  return keys;
}

async function generatedKey(algorithm) {
  const d = await mkdtemp(path.join(os.tmpdir(), 'latchkey-e2e-key-'));
  try {
    const r = await runCli(['init', '--data-dir', d, '--algorithm', algorithm]);
    assert.equal(r.code, 0, r.stderr);
    const keys = keysOf(await readFile(path.join(d, 'latchkey.secrets.yaml'), 'utf8'));
    assert.equal(keys.length, 1, 'init writes one signing key');
    return keys[0];
  } finally {
    await rm(d, { recursive: true, force: true });
  }
}

async function writeKeys(dataDir, keys) {
  const secrets = {
    secrets: [
      { key: 'oauth', data: { keys } },
      { key: 'oauth.client_secrets', data: { items: [{ client_id: 'backend', keys: [{ kty: 'oct', k: Buffer.from(BACKEND_SECRET).toString('base64url') }] }] } },
    ],
  };
  await writeFile(path.join(dataDir, 'latchkey.secrets.yaml'), toYaml(secrets));
}

describe('signing key rotation', { timeout: 90000 }, () => {
  let srv;
  before(async () => { srv = await startServer(); });
  after(async () => { await srv?.cleanup(); });

  it('publish both, sign with the first, keep old tokens valid; removing a key retires its tokens', async () => {
    const original = keysOf(await readFile(path.join(srv.dataDir, 'latchkey.secrets.yaml'), 'utf8'));
    assert.equal(original.length, 1, 'one key after init');
    const k1 = original[0];
    const old = await login(srv.origin);
    assert.equal(decodeJwt(old.tokens.access_token).header.kid, k1.kid);

    // 1. publish a new ES256 key first: it signs; the old RS256 key is still published
    const k2 = await generatedKey('ES256');
    assert.notEqual(k2.kid, k1.kid);
    await srv.stop();
    await writeKeys(srv.dataDir, [k2, k1]);
    await srv.start();
    const jwks = await getJson(`${srv.origin}/oauth2/jwks`);
    assert.deepEqual(jwks.keys.map((k) => k.kid), [k2.kid, k1.kid], 'both keys published, in order');
    for (const k of jwks.keys) for (const m of ['d', 'p', 'q', 'dp', 'dq', 'qi']) assert.equal(k[m], undefined, `no private ${m}`);
    const fresh = await login(srv.origin);
    const h = decodeJwt(fresh.tokens.access_token).header;
    assert.equal(h.kid, k2.kid, 'the first key signs');
    assert.equal(h.alg, 'ES256');
    assert.ok(verifyJwt(fresh.tokens.access_token, jwks));
    assert.ok(verifyJwt(old.tokens.access_token, jwks), 'old token verifies against the published old key');
    assert.equal((await resolve(srv.origin, { bearer: old.tokens.access_token })).ag['x-authgear-session-valid'], 'true',
      'a token signed by a still-published key is valid');
    assert.equal((await resolve(srv.origin, { bearer: fresh.tokens.access_token })).ag['x-authgear-session-valid'], 'true');
    // refreshing the old session now yields a token signed by the new key
    const r = await refresh(srv.origin, old.tokens.refresh_token);
    assert.equal(r.status, 200, r.text);
    assert.equal(decodeJwt(r.json().access_token).header.kid, k2.kid);

    // 2. retire the old key
    await srv.stop();
    await writeKeys(srv.dataDir, [k2]);
    await srv.start();
    const jwks2 = await getJson(`${srv.origin}/oauth2/jwks`);
    assert.deepEqual(jwks2.keys.map((k) => k.kid), [k2.kid]);
    const gone = await resolve(srv.origin, { bearer: old.tokens.access_token });
    assert.deepEqual(gone.ag, { 'x-authgear-session-valid': 'false' }, 'a token of a retired key is invalid');
    assert.equal((await resolve(srv.origin, { bearer: r.json().access_token })).ag['x-authgear-session-valid'], 'true');
  });
});
