// The peer of Latchkey's HTTP benchmarks: node oidc-provider, configured in memory,
// serving RFC 7662 token introspection for opaque client_credentials access tokens.
//
//   node server.mjs PORT CLIENT_ID CLIENT_SECRET
//
// Listens on 127.0.0.1:PORT, mints one access token for the client (client_credentials,
// client_secret_basic, over loopback HTTP like any client would), prints it on stdout
// as `token <value>`, then `oidc-provider listening on http://127.0.0.1:PORT`. The
// benchmark then POSTs that token to /token/introspection with the same client auth.
// Tokens live in oidc-provider's default in-memory adapter; node runs one thread.
import { generateKeyPairSync } from "node:crypto";
import Provider from "oidc-provider";

const [port, clientId, clientSecret] = process.argv.slice(2);
if (!port || !clientId || !clientSecret) {
  console.error("usage: node server.mjs PORT CLIENT_ID CLIENT_SECRET");
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
// A signing key of its own (unused by opaque tokens, but the provider wants one).
const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: "jwk" }), use: "sig", alg: "RS256", kid: "bench" };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: "client_secret_basic",
      introspection_endpoint_auth_method: "client_secret_basic",
    },
  ],
  jwks: { keys: [jwk] },
  cookies: { keys: ["latchkey-bench-cookie-key"] },
  scopes: ["api"],
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    clientCredentials: { enabled: true },
  },
  ttl: { ClientCredentials: 3600 },
});
provider.proxy = false;

const server = provider.listen(Number(port), "127.0.0.1", async () => {
  try {
    const basic = Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(clientSecret)}`).toString("base64");
    const r = await fetch(`${issuer}/token`, {
      method: "POST",
      headers: { authorization: `Basic ${basic}`, "content-type": "application/x-www-form-urlencoded" },
      body: "grant_type=client_credentials&scope=api",
    });
    const body = await r.json();
    if (r.status !== 200 || !body.access_token) {
      console.error(`client_credentials answered ${r.status}: ${JSON.stringify(body)}`);
      process.exit(1);
    }
    console.log(`token ${body.access_token}`);
    console.log(`oidc-provider listening on ${issuer}`);
  } catch (e) {
    console.error(e);
    process.exit(1);
  }
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
