// Backends verify Latchkey's access tokens with the libraries they already use: npm
// `jose` and PyPI `PyJWT`, both through `jwks_uri`. Each accepts a valid token and
// rejects an expired one.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as jose from 'jose';
import { startServer, baseConfig, demoClient, backendClient, login, sleep } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const PYTHON = process.env.LATCHKEY_PYTHON || path.join(process.env.HOME || '/root', '.cache/latchkey-venv/bin/python');

function pyjwt(issuer, token) {
  return new Promise((resolve) => {
    execFile(PYTHON, [path.join(here, 'py/verify_pyjwt.py'), issuer, token], { timeout: 20000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (err.code ?? 1) : 0, out: stdout.trim(), err: stderr });
    });
  });
}

for (const algorithm of ['RS256', 'ES256', 'EdDSA']) {
  describe(`jose and PyJWT verify ${algorithm} access tokens through the JWKS`, { timeout: 60000 }, () => {
    let srv;
    before(async () => {
      srv = await startServer({
        algorithm,
        config: (o) => baseConfig(o, {
          jwt: { time_tolerance_seconds: 0 },
          clients: [demoClient({ access_token_lifetime_seconds: 6 }), backendClient()],
        }),
      });
    });
    after(async () => { await srv?.stop(); });

    it('accepts a valid token, rejects it once expired', async () => {
      const { tokens } = await login(srv.origin);
      const jwks = jose.createRemoteJWKSet(new URL(`${srv.origin}/oauth2/jwks`));
      const opts = { issuer: srv.origin, audience: srv.origin, typ: 'at+jwt', clockTolerance: 0 };
      const { payload, protectedHeader } = await jose.jwtVerify(tokens.access_token, jwks, opts);
      assert.equal(protectedHeader.alg, algorithm);
      assert.equal(payload.sub, srv.userIds.alice);
      const py = await pyjwt(srv.origin, tokens.access_token);
      assert.equal(py.code, 0, `PyJWT rejected a valid token: ${py.out} ${py.err}`);
      assert.equal(py.out, srv.userIds.alice);

      // Wait until just past `exp` (tolerance 0 everywhere), whatever the load on the machine.
      const { exp } = JSON.parse(Buffer.from(tokens.access_token.split('.')[1], 'base64url').toString());
      await sleep(Math.max(0, exp * 1000 - Date.now()) + 1200);
      await assert.rejects(jose.jwtVerify(tokens.access_token, jwks, opts), (e) => e.code === 'ERR_JWT_EXPIRED');
      const expired = await pyjwt(srv.origin, tokens.access_token);
      assert.equal(expired.code, 1, `PyJWT accepted an expired token: ${expired.out}`);
      assert.equal(expired.out, 'ExpiredSignatureError');
    });

    it('both reject a token whose payload was tampered with', async () => {
      const { tokens } = await login(srv.origin);
      const [h, p, s] = tokens.access_token.split('.');
      const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
      claims.sub = 'someone-else';
      const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
      const jwks = jose.createRemoteJWKSet(new URL(`${srv.origin}/oauth2/jwks`));
      await assert.rejects(jose.jwtVerify(forged, jwks, { issuer: srv.origin, audience: srv.origin }));
      const py = await pyjwt(srv.origin, forged);
      assert.equal(py.code, 1);
      assert.equal(py.out, 'InvalidSignatureError');
    });
  });
}
