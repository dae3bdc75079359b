//! The operator commands (`latchkey users …`, `latchkey sessions …`): each is one or a
//! few admin API requests ([`AdminClient`]) and a rendering of the answer, a table for
//! people or the API's JSON with `--json` (one document, or one JSON line per record
//! for listings, so that `jq` and scripts read it as it streams).

use std::io::{IsTerminal, Write};

use http::Method;
use serde_json::{Value, json};

use crate::admin_client::AdminClient;

/// How results are printed.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Json,
}

/// Percent-encodes one path segment or query value (RFC 3986 unreserved kept).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `2026-12-02T09:30:00Z` for Unix seconds (UTC; the civil-from-days algorithm).
pub fn format_time(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Prints rows under a header, each column as wide as its widest cell.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for row in rows {
        let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
    }
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(Value::Array(items)) => {
            let joined: Vec<String> =
                items.iter().map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned)).collect();
            if joined.is_empty() { "-".into() } else { joined.join(",") }
        }
        Some(Value::Number(n)) if key.ends_with("_at") => n.as_u64().map_or_else(|| n.to_string(), format_time),
        Some(other) => other.to_string(),
    }
}

const USER_COLUMNS: [&str; 6] = ["USERNAME", "ID", "DISABLED", "VERIFIED", "ROLES", "CREATED"];

fn user_row(u: &Value) -> Vec<String> {
    vec![
        text(u, "username"),
        text(u, "id"),
        match u.get("disabled_reason").and_then(Value::as_str) {
            Some(reason) if u["disabled"] == true => format!("yes ({reason})"),
            _ => text(u, "disabled"),
        },
        text(u, "is_verified"),
        text(u, "roles"),
        text(u, "created_at"),
    ]
}

fn print_json(v: &Value) {
    println!("{v}");
}

/// A progress bar on stderr for long operations, drawn only when stderr is a terminal
/// (so logs and pipes stay clean).
pub struct Progress {
    what: &'static str,
    total: Option<u64>,
    done: u64,
    draw: bool,
}

impl Progress {
    pub fn new(what: &'static str, total: Option<u64>) -> Self {
        Progress { what, total, done: 0, draw: std::io::stderr().is_terminal() }
    }

    pub fn advance(&mut self, n: u64) {
        self.done += n;
        if !self.draw {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = match self.total {
            Some(total) if total > 0 => {
                let filled = usize::try_from(self.done.min(total) * 30 / total).unwrap_or(30);
                write!(err, "\r[{}{}] {}/{total} {}", "#".repeat(filled), "-".repeat(30 - filled), self.done, self.what)
            }
            _ => write!(err, "\r{} {}", self.done, self.what),
        };
        let _ = err.flush();
    }

    pub fn finish(&self) {
        if self.draw {
            eprintln!();
        }
    }
}

/// Walks the user listing a page at a time, following its cursor.
struct UserPages {
    query: String,
    after: Option<String>,
    done: bool,
}

impl UserPages {
    /// Pages of `GET users?<query>` (`query` without `after`).
    fn new(query: String) -> Self {
        UserPages { query, after: None, done: false }
    }

    /// The next page of at most `limit` users, or `None` after the last one.
    async fn next(&mut self, admin: &AdminClient, limit: usize) -> Result<Option<Vec<Value>>, String> {
        if self.done {
            return Ok(None);
        }
        let mut path = format!("users?{}&limit={limit}", self.query);
        if let Some(a) = &self.after {
            path.push_str(&format!("&after={}", encode(a)));
        }
        let answer = admin.call(Method::GET, &path, None).await?;
        self.after = answer["next_after"].as_str().map(str::to_owned);
        self.done = self.after.is_none();
        Ok(Some(answer["users"].as_array().cloned().unwrap_or_default()))
    }
}

/// The user named `username`.
pub async fn user_named(admin: &AdminClient, username: &str) -> Result<Value, String> {
    Ok(admin.call(Method::GET, &format!("users?username={}", encode(username)), None).await?)
}

fn user_id(user: &Value) -> Result<String, String> {
    user["id"].as_str().map(str::to_owned).ok_or_else(|| "the answer has no user id".into())
}

pub async fn users_add(
    admin: &AdminClient,
    out: Output,
    username: &str,
    secret: (&str, &str),
    verified: bool,
    roles: &[String],
) -> Result<(), String> {
    let (field, value) = secret;
    let body = json!({ "username": username, field: value, "is_verified": verified, "roles": roles });
    let user = admin.call(Method::POST, "users", Some(&body)).await?;
    match out {
        Output::Json => print_json(&user),
        // The id alone, so that scripts can capture it.
        Output::Table => println!("{}", user_id(&user)?),
    }
    Ok(())
}

pub async fn users_get(admin: &AdminClient, out: Output, username: &str) -> Result<(), String> {
    let user = user_named(admin, username).await?;
    match out {
        Output::Json => print_json(&user),
        Output::Table => print_table(&USER_COLUMNS, &[user_row(&user)]),
    }
    Ok(())
}

/// Lists users page by page (`limit` per request) until `max` are shown or none are left.
pub async fn users_list(
    admin: &AdminClient,
    out: Output,
    prefix: &str,
    page: usize,
    max: Option<usize>,
) -> Result<(), String> {
    let mut pages = UserPages::new(format!("prefix={}", encode(prefix)));
    let mut rows = Vec::new();
    let mut shown = 0usize;
    let mut progress = Progress::new("users", None);
    loop {
        let want = max.map_or(page, |m| page.min(m - shown));
        let Some(users) = pages.next(admin, want).await? else { break };
        shown += users.len();
        for u in &users {
            match out {
                Output::Json => print_json(u),
                Output::Table => rows.push(user_row(u)),
            }
        }
        if out == Output::Table {
            progress.advance(users.len() as u64);
        }
        if max.is_some_and(|m| shown >= m) {
            break;
        }
    }
    if out == Output::Table {
        progress.finish();
        print_table(&USER_COLUMNS, &rows);
    }
    Ok(())
}

pub async fn users_set_disabled(
    admin: &AdminClient,
    out: Output,
    username: &str,
    disabled: bool,
    reason: Option<&str>,
) -> Result<(), String> {
    let id = user_id(&user_named(admin, username).await?)?;
    let (action, body) = if disabled { ("disable", reason.map(|r| json!({ "reason": r }))) } else { ("enable", None) };
    let user = admin.call(Method::POST, &format!("users/{}/{action}", encode(&id)), body.as_ref()).await?;
    match out {
        Output::Json => print_json(&user),
        Output::Table if disabled => eprintln!("disabled {username}; all of their sessions are revoked"),
        Output::Table => eprintln!("enabled {username}"),
    }
    Ok(())
}

pub async fn users_delete(admin: &AdminClient, out: Output, username: &str) -> Result<(), String> {
    let id = user_id(&user_named(admin, username).await?)?;
    let answer = admin.call(Method::DELETE, &format!("users/{}", encode(&id)), None).await?;
    match out {
        Output::Json => print_json(&answer),
        Output::Table => eprintln!("deleted {username} ({id}); all of their sessions are revoked"),
    }
    Ok(())
}

pub async fn sessions_list(admin: &AdminClient, out: Output, username: &str) -> Result<(), String> {
    let id = user_id(&user_named(admin, username).await?)?;
    let answer = admin.call(Method::GET, &format!("users/{}/sessions", encode(&id)), None).await?;
    let sessions = answer["sessions"].as_array().cloned().unwrap_or_default();
    match out {
        Output::Json => sessions.iter().for_each(print_json),
        Output::Table => {
            let rows: Vec<Vec<String>> = sessions
                .iter()
                .map(|s| {
                    ["id", "kind", "client_id", "created_at", "last_used_at", "expires_at", "ip", "user_agent"]
                        .iter()
                        .map(|k| text(s, k))
                        .collect()
                })
                .collect();
            print_table(&["ID", "KIND", "CLIENT", "CREATED", "LAST USED", "EXPIRES", "IP", "USER AGENT"], &rows);
        }
    }
    Ok(())
}

pub async fn sessions_revoke(admin: &AdminClient, out: Output, session_id: &str) -> Result<(), String> {
    let answer = admin.call(Method::POST, &format!("sessions/{}/revoke", encode(session_id)), None).await?;
    match out {
        Output::Json => print_json(&answer),
        Output::Table => eprintln!("revoked session {session_id} and the sessions made from it"),
    }
    Ok(())
}

pub async fn sessions_revoke_all(admin: &AdminClient, out: Output, username: &str) -> Result<(), String> {
    let id = user_id(&user_named(admin, username).await?)?;
    let answer = admin.call(Method::POST, &format!("users/{}/sessions/revoke", encode(&id)), None).await?;
    match out {
        Output::Json => print_json(&answer),
        Output::Table => eprintln!("revoked {} session(s) of {username}", answer["revoked"]),
    }
    Ok(())
}

pub async fn sessions_create(
    admin: &AdminClient,
    out: Output,
    username: &str,
    client_id: &str,
    scope: Option<&str>,
) -> Result<(), String> {
    let id = user_id(&user_named(admin, username).await?)?;
    let mut body = json!({ "client_id": client_id });
    if let Some(s) = scope {
        body["scope"] = json!(s);
    }
    let answer = admin.call(Method::POST, &format!("users/{}/sessions", encode(&id)), Some(&body)).await?;
    // Tokens are for programs: printed as JSON either way, never as a table someone
    // might paste into a ticket.
    let _ = out;
    print_json(&answer);
    Ok(())
}

/// Users sent per import request: a line with a plaintext password costs one argon2id
/// hash on the server (tens of milliseconds), and a request must end well within a
/// Lambda's 10-second timeout.
const IMPORT_CHUNK: usize = 25;
/// Bytes of JSON per import request, under the server's 64 KiB body limit.
const IMPORT_CHUNK_BYTES: usize = 48 * 1024;

/// One line's outcome.
struct LineResult {
    line: usize,
    username: Option<String>,
    status: &'static str,
    id: Option<String>,
    reason: Option<String>,
}

/// Imports users from JSON Lines (`-`: stdin), each line an object as for `POST /users`
/// (or a line of `users export`). Lines are checked as JSON here, sent in batches, and
/// every line is reported: created, skipped (the username exists) or rejected (why).
/// Returns an error, after the report, if any line was rejected.
pub async fn users_import(admin: &AdminClient, out: Output, file: &std::path::Path) -> Result<(), String> {
    let text = if file == std::path::Path::new("-") {
        let mut t = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin().lock(), &mut t).map_err(|e| format!("stdin: {e}"))?;
        t
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?
    };
    let lines: Vec<(usize, &str)> =
        text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())).filter(|(_, l)| !l.is_empty()).collect();
    let mut results: Vec<LineResult> = Vec::with_capacity(lines.len());
    let mut progress = Progress::new("lines", Some(lines.len() as u64));
    let reject = |line: usize, username: Option<String>, reason: String| LineResult {
        line,
        username,
        status: "rejected",
        id: None,
        reason: Some(reason),
    };
    // Checked here as JSON, then cut into batches of at most IMPORT_CHUNK lines and
    // IMPORT_CHUNK_BYTES: a batch is closed before a line would take it past either.
    let mut batches: Vec<Vec<(usize, Value)>> = Vec::new();
    let mut batch: Vec<(usize, Value)> = Vec::new();
    let mut batch_bytes = 0;
    for (line, raw) in &lines {
        match serde_json::from_str::<Value>(raw) {
            Ok(v) if !v.is_object() => results.push(reject(*line, None, "not a JSON object".into())),
            Ok(_) if raw.len() > IMPORT_CHUNK_BYTES => results.push(reject(*line, None, "line too long".into())),
            Ok(v) => {
                if batch.len() == IMPORT_CHUNK || (!batch.is_empty() && batch_bytes + raw.len() > IMPORT_CHUNK_BYTES) {
                    batches.push(std::mem::take(&mut batch));
                    batch_bytes = 0;
                }
                batch_bytes += raw.len();
                batch.push((*line, v));
            }
            Err(e) => results.push(reject(*line, None, format!("invalid JSON: {e}"))),
        }
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    for sent in batches {
        let body = json!({ "users": sent.iter().map(|(_, v)| v).collect::<Vec<_>>() });
        let answer = admin.call(Method::POST, "users/import", Some(&body)).await.map_err(|e| {
            format!("import stopped at line {}: {e} (lines before it are in; run it again to go on)", sent[0].0)
        })?;
        let answered = answer["results"].as_array().cloned().unwrap_or_default();
        if answered.len() != sent.len() {
            return Err(format!("the server answered {} results for {} users", answered.len(), sent.len()));
        }
        for ((line, _), r) in sent.iter().zip(&answered) {
            let status = match r["status"].as_str() {
                Some("created") => "created",
                Some("skipped") => "skipped",
                _ => "rejected",
            };
            results.push(LineResult {
                line: *line,
                username: r["username"].as_str().map(str::to_owned),
                status,
                id: r["id"].as_str().map(str::to_owned),
                reason: r["reason"].as_str().map(str::to_owned),
            });
        }
        progress.advance(sent.len() as u64);
    }
    progress.finish();
    results.sort_by_key(|r| r.line);
    let count = |status: &str| results.iter().filter(|r| r.status == status).count();
    let (created, skipped, rejected) = (count("created"), count("skipped"), count("rejected"));
    match out {
        Output::Json => {
            for r in &results {
                print_json(&json!({
                    "line": r.line, "username": r.username, "status": r.status, "id": r.id, "reason": r.reason,
                }));
            }
        }
        Output::Table => {
            let rows: Vec<Vec<String>> = results
                .iter()
                .filter(|r| r.status != "created")
                .map(|r| {
                    vec![
                        r.line.to_string(),
                        r.username.clone().unwrap_or_else(|| "-".into()),
                        r.status.to_owned(),
                        r.reason.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                print_table(&["LINE", "USERNAME", "STATUS", "REASON"], &rows);
            }
            println!("created {created}, skipped {skipped}, rejected {rejected}");
        }
    }
    if rejected > 0 {
        return Err(format!("{rejected} line(s) rejected; the others are imported"));
    }
    Ok(())
}

/// Every user as JSON Lines, with password hashes: what `users import` reads, so a
/// deployment's users move to another one with their ids and passwords.
pub async fn users_export(admin: &AdminClient) -> Result<(), String> {
    let mut pages = UserPages::new("password_hashes=true".into());
    let mut progress = Progress::new("users", None);
    let mut out = std::io::stdout().lock();
    while let Some(users) = pages.next(admin, 500).await? {
        for u in &users {
            writeln!(out, "{u}").map_err(|e| format!("stdout: {e}"))?;
        }
        progress.advance(users.len() as u64);
    }
    progress.finish();
    Ok(())
}

/// Every active session of every user as JSON Lines (the session record with the
/// user's id and username; no secret or its hash), for audits and migrations.
pub async fn sessions_export(admin: &AdminClient) -> Result<(), String> {
    let mut pages = UserPages::new("prefix=".into());
    let mut progress = Progress::new("users", None);
    let mut out = std::io::stdout().lock();
    while let Some(users) = pages.next(admin, 100).await? {
        for u in &users {
            let id = user_id(u)?;
            let sessions = admin.call(Method::GET, &format!("users/{}/sessions", encode(&id)), None).await?;
            for mut s in sessions["sessions"].as_array().cloned().unwrap_or_default() {
                s["user_id"] = json!(id);
                s["username"] = u["username"].clone();
                writeln!(out, "{s}").map_err(|e| format!("stdout: {e}"))?;
            }
        }
        progress.advance(users.len() as u64);
    }
    progress.finish();
    Ok(())
}

/// Prints audit events from `since` seconds ago (a table row or a JSON line each),
/// then, with `follow`, every new one as it comes (polling every two seconds).
pub async fn audit_tail(
    admin: &AdminClient,
    out: Output,
    since: u64,
    limit: usize,
    follow: bool,
) -> Result<(), String> {
    #[expect(clippy::disallowed_methods, reason = "the CLI's start time, for --since")]
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut after = format!("{:010}", now.saturating_sub(since));
    let mut header = out == Output::Table;
    let mut shown = 0usize;
    loop {
        let want = if follow { 1000 } else { (limit - shown).clamp(1, 1000) };
        let answer = admin.call(Method::GET, &format!("audit?after={}&limit={want}", encode(&after)), None).await?;
        let events = answer["events"].as_array().cloned().unwrap_or_default();
        for e in &events {
            match out {
                Output::Json => print_json(e),
                Output::Table => {
                    if header {
                        println!(
                            "{:<20}  {:<28}  {:<36}  {:<12}  {:<15}  DETAIL",
                            "TIME", "EVENT", "USER", "CLIENT", "IP"
                        );
                        header = false;
                    }
                    println!(
                        "{:<20}  {:<28}  {:<36}  {:<12}  {:<15}  {}",
                        text(e, "at"),
                        text(e, "event"),
                        text(e, "user_id"),
                        text(e, "client_id"),
                        text(e, "ip"),
                        text(e, "detail")
                    );
                }
            }
        }
        let _ = std::io::stdout().flush();
        shown += events.len();
        if let Some(next) = answer["next_after"].as_str() {
            next.clone_into(&mut after);
        }
        if !follow && (events.len() < want || shown >= limit) {
            return Ok(());
        }
        if follow && events.len() < want {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    }
}

/// The key ring as the admin API answers it: a table of keys, and what a change did.
fn print_keys(out: Output, answer: &Value) {
    if out == Output::Json {
        print_json(answer);
        return;
    }
    for a in answer["actions"].as_array().into_iter().flatten() {
        eprintln!("{}", a.as_str().unwrap_or_default());
    }
    let rows: Vec<Vec<String>> = answer["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|k| {
            ["kid", "alg", "state", "published_at", "signs_from", "activated_at", "retired_at", "removable_at"]
                .iter()
                .map(|f| text(k, f))
                .collect()
        })
        .collect();
    print_table(&["KID", "ALG", "STATE", "PUBLISHED", "SIGNS FROM", "ACTIVATED", "RETIRED", "REMOVABLE"], &rows);
    if answer["stored"] == false {
        eprintln!("(the secrets' keys: no rotation has stored a key ring yet)");
    }
}

/// One key-ring operation: `method` on `keys…` (see the admin API), printed.
pub async fn keys(
    admin: &AdminClient,
    out: Output,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<(), String> {
    let answer = admin.call(method, path, body).await?;
    print_keys(out, &answer);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_time(1_796_204_400), "2026-12-02T09:40:00Z");
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode("alice@example.com"), "alice%40example.com");
        assert_eq!(encode("a b/c?d&e"), "a%20b%2Fc%3Fd%26e");
        assert_eq!(encode("ålvar"), "%C3%A5lvar");
    }
}
