//! The `latchkey-resolve` Lambda function: `/_resolver/resolve`.

fn main() -> Result<(), lambda_http::Error> {
    latchkey_lambda::serve("latchkey-resolve")
}
