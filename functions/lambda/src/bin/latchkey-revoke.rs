//! The `latchkey-revoke` Lambda function: `/oauth2/revoke`.

fn main() -> Result<(), lambda_http::Error> {
    latchkey_lambda::serve("latchkey-revoke")
}
