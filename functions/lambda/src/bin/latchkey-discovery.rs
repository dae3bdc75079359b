//! The `latchkey-discovery` Lambda function: `/.well-known/openid-configuration`, `/.well-known/oauth-authorization-server`, `/oauth2/jwks`, `/openapi.yaml`, `/healthz`.

fn main() -> Result<(), lambda_http::Error> {
    latchkey_lambda::serve("latchkey-discovery")
}
