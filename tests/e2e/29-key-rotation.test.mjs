// Signing-key rotation through the key ring in the store (`latchkey keys …` over the
// admin API), on every target: a new key is published before it signs, tokens signed
// before a rotation keep verifying through the JWKS (jose, as a backend would) and at
// the resolver until they expire, and a retired key leaves the JWKS only once no token
// it signed can be valid.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as jose from 'jose';
import {
  startServer, baseConfig, demoClient, backendClient, login, resolve, getJson, decodeJwt, sleep,
} from './harness.mjs';

const jsonOf = (r) => JSON.parse(r.stdout);
const kids = async (origin) => (await getJson(`${origin}/oauth2/jwks`)).keys.map((k) => k.kid).sort();

// Each instance (a server thread, a Lambda instance, a Worker isolate) re-reads the
// ring every keys.cache_seconds (1 s here): after a change, every one has it by then.
const CACHE_MS = 1000;
const settle = () => sleep(CACHE_MS + 300);

describe('signing-key rotation', { timeout: 300000 }, () => {
  let srv;
  // Short times so the whole life of a key fits in a test: tokens live 10 s, a key is
  // published 3 s before it signs, instances re-read the ring every second, and 1 s of
  // clock skew is tolerated; a retired key may go 10 + 1 + 1 = 12 s (300 s for ID tokens
  // is the floor: see below) after it stopped signing.
  const ACCESS_SECONDS = 10;
  before(async () => {
    srv = await startServer({
      algorithm: 'ES256',
      config: (origin) => baseConfig(origin, {
        jwt: { time_tolerance_seconds: 1 },
        keys: { prepublish_seconds: 3, cache_seconds: 1 },
        clients: [demoClient({ access_token_lifetime_seconds: ACCESS_SECONDS }), backendClient({ access_token_lifetime_seconds: ACCESS_SECONDS })],
      }),
    });
  });
  after(async () => { await srv?.cleanup(); });

  async function keys(args) {
    const r = await srv.admin(['keys', ...args, '--json']);
    assert.equal(r.code, 0, `keys ${args.join(' ')}: ${r.stdout}\n${r.stderr}`);
    return jsonOf(r);
  }

  it('publishes the next key before it signs, and old tokens verify through the JWKS until they expire', async () => {
    const before = await keys(['list']);
    assert.equal(before.stored, false, 'no ring before the first rotation');
    assert.equal(before.keys.length, 1);
    const [k1] = before.keys.map((k) => k.kid);
    const old = await login(srv.origin);
    assert.equal(decodeJwt(old.tokens.access_token).header.kid, k1);

    // First run: the ring is seeded from the secrets, and a next key is published.
    const first = await keys(['rotate']);
    assert.equal(first.stored, true);
    assert.match(first.actions.join('\n'), /seeded the key ring/);
    const k2 = first.keys.find((k) => k.state === 'next').kid;
    assert.match(first.actions.join('\n'), new RegExp(`published the next key ${k2}`));
    await settle();
    for (let i = 0; i < 4; i += 1) assert.deepEqual(await kids(srv.origin), [k1, k2].sort(), 'every instance publishes it');
    const during = await login(srv.origin);
    assert.equal(decodeJwt(during.tokens.access_token).header.kid, k1, 'the next key signs nothing yet');

    // Too early to promote: the schedule waits, a manual promote is refused.
    assert.deepEqual((await keys(['rotate'])).actions, [], 'nothing is due yet');
    const early = await srv.admin(['keys', 'promote', '--kid', k2]);
    assert.equal(early.code, 1);
    assert.match(early.stderr, /published for \d+ s of the 3 s/);

    await sleep(3100);
    const second = await keys(['rotate']);
    assert.match(second.actions.join('\n'), new RegExp(`${k2} signs now; ${k1} is retired`));
    const retired = second.keys.find((k) => k.kid === k1);
    assert.equal(retired.state, 'retired');
    // ID tokens (300 s) are the longest-lived tokens here.
    assert.equal(second.retire_after_seconds, 300 + 1 + 1);
    assert.equal(retired.removable_at, retired.retired_at + 302);

    await settle();
    const fresh = await login(srv.origin);
    assert.equal(decodeJwt(fresh.tokens.access_token).header.kid, k2, 'new tokens are signed by the new key');
    // Both generations verify through the JWKS, as a backend verifies them.
    const remote = jose.createRemoteJWKSet(new URL(`${srv.origin}/oauth2/jwks`));
    for (const t of [during.tokens.access_token, fresh.tokens.access_token]) {
      const { payload } = await jose.jwtVerify(t, remote, { issuer: srv.origin, audience: srv.origin });
      assert.equal(payload.sub, srv.userIds.alice);
    }
    await jose.jwtVerify(during.tokens.id_token, remote, { issuer: srv.origin, audience: 'demo' });
    for (const t of [during.tokens.access_token, fresh.tokens.access_token]) {
      const r = await resolve(srv.origin, { bearer: t });
      assert.equal(r.ag['x-authgear-session-valid'], 'true', 'the resolver accepts tokens of both keys');
    }
    // Until they expire: then the old one is refused, whatever key signed it.
    await sleep((ACCESS_SECONDS + 1 + 1) * 1000);
    assert.equal((await resolve(srv.origin, { bearer: during.tokens.access_token })).ag['x-authgear-session-valid'], 'false');
    assert.equal((await resolve(srv.origin, { bearer: old.tokens.access_token })).ag['x-authgear-session-valid'], 'false');

    // The schedule keeps k1 published: an ID token it signed may still be in use.
    const third = await keys(['rotate']);
    assert.ok(!third.actions.some((a) => a.includes('removed')), third.actions.join('\n'));
    assert.ok((await kids(srv.origin)).includes(k1));
    const refused = await srv.admin(['keys', 'remove', '--kid', k1]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /may be valid for \d+ s more/);
    // An operator who knows better can remove it early.
    const removed = await keys(['remove', '--kid', k1, '--force']);
    assert.deepEqual(removed.keys.map((k) => k.kid).sort(), [k2, third.keys.find((k) => k.state === 'next')?.kid].filter(Boolean).sort());
    await settle();
    assert.ok(!(await kids(srv.origin)).includes(k1), 'the JWKS drops the removed key');
    const now = await login(srv.origin);
    assert.equal(decodeJwt(now.tokens.access_token).header.kid, k2);
    const r = await resolve(srv.origin, { bearer: now.tokens.access_token });
    assert.equal(r.ag['x-authgear-session-valid'], 'true', "the new key's tokens are unaffected");
  });

  it('refuses unsafe steps and keeps exactly one signing key', async () => {
    const ring = await keys(['list']);
    const active = ring.keys.find((k) => k.state === 'active').kid;
    const retireActive = await srv.admin(['keys', 'retire', '--kid', active]);
    assert.equal(retireActive.code, 1);
    assert.match(retireActive.stderr, /signing key; promote a next key/);
    const removeActive = await srv.admin(['keys', 'remove', '--kid', active, '--force']);
    assert.equal(removeActive.code, 1, 'not even forced');
    const next = ring.keys.find((k) => k.state === 'next') ?? (await keys(['add'])).keys.find((k) => k.state === 'next');
    const second = await srv.admin(['keys', 'add']);
    assert.equal(second.code, 1, 'one next key at a time');
    assert.match(second.stderr, /next key already/);
    const dropped = await keys(['retire', '--kid', next.kid]);
    assert.ok(!dropped.keys.some((k) => k.kid === next.kid), 'a next key that never signed is dropped');
    const eddsa = await keys(['add', '--alg', 'EdDSA']);
    const made = eddsa.keys.find((k) => k.state === 'next');
    assert.equal(made.alg, 'EdDSA');
    await keys(['promote', '--kid', made.kid, '--force']);
    await settle();
    assert.equal(decodeJwt((await login(srv.origin)).tokens.access_token).header.alg, 'EdDSA');
    const disc = await getJson(`${srv.origin}/.well-known/openid-configuration`);
    assert.deepEqual(disc.id_token_signing_alg_values_supported.sort(), ['ES256', 'EdDSA'], 'both algorithms are in use');
    const list = await srv.admin(['keys', 'list']);
    assert.match(list.stdout.split('\n')[0], /^KID\s+ALG\s+STATE\s+PUBLISHED\s+SIGNS FROM\s+ACTIVATED\s+RETIRED\s+REMOVABLE$/);
    assert.equal((list.stdout.match(/\bactive\b/g) ?? []).length, 1, 'one active key');
  });

  it('the ring survives a restart: the store, not the secrets file, is the key set', async () => {
    const before = await kids(srv.origin);
    await srv.restart();
    assert.deepEqual(await kids(srv.origin), before);
    const l = await login(srv.origin);
    assert.equal(decodeJwt(l.tokens.access_token).header.alg, 'EdDSA');
  });
});
