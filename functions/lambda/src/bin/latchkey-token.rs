//! The `latchkey-token` Lambda function: `/oauth2/token`.

fn main() -> Result<(), lambda_http::Error> {
    latchkey_lambda::serve("latchkey-token")
}
