//! The `latchkey-authorize` Lambda function: `/oauth2/authorize`, `/oauth2/end_session`.

fn main() -> Result<(), lambda_http::Error> {
    latchkey_lambda::serve("latchkey-authorize")
}
