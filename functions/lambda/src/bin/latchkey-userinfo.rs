//! The `latchkey-userinfo` Lambda function: `/oauth2/userinfo`.

fn main() -> Result<(), lambda_http::Error> {
    latchkey_lambda::serve("latchkey-userinfo")
}
