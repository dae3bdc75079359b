//! The `latchkey-admin` Lambda function: `/_api/admin/…`, the admin API (users and
//! sessions), on when the secret lists admin key hashes.

fn main() -> Result<(), lambda_http::Error> {
    latchkey_lambda::serve("latchkey-admin")
}
