//! Server-rendered pages: the login form, the logout confirmation and messages.
//! No scripts, no external requests beyond the configured logo; every interpolated
//! value is escaped.

use crate::config::UiConfig;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(ui: &UiConfig, title: &str, content: &str) -> String {
    let logo = ui
        .logo_url
        .as_deref()
        .map(|u| format!("<img class=\"logo\" src=\"{}\" alt=\"\">", escape(u)))
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · {product}</title>
<style>
  :root {{ --accent: {color}; }}
  * {{ box-sizing: border-box; }}
  body {{ margin: 0; min-height: 100vh; display: flex; align-items: center; justify-content: center;
         font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; background: #f5f6f8; color: #1c1e21; }}
  main {{ width: 100%; max-width: 24rem; margin: 1rem; padding: 2rem; background: #fff; border-radius: 12px;
         box-shadow: 0 1px 3px rgba(0,0,0,.12); }}
  .logo {{ display: block; max-height: 48px; margin: 0 auto 1rem; }}
  h1 {{ font-size: 1.35rem; margin: 0 0 1.25rem; text-align: center; }}
  label {{ display: block; font-weight: 600; margin: 1rem 0 .35rem; }}
  input[type=text], input[type=password] {{ width: 100%; padding: .65rem .75rem; font-size: 1rem;
         border: 1px solid #c6c9ce; border-radius: 8px; }}
  input:focus-visible, button:focus-visible {{ outline: 3px solid var(--accent); outline-offset: 2px; }}
  button {{ width: 100%; margin-top: 1.5rem; padding: .75rem; font-size: 1rem; font-weight: 600; color: #fff;
         background: var(--accent); border: 0; border-radius: 8px; cursor: pointer; }}
  .error {{ margin: 0 0 1rem; padding: .75rem; border-radius: 8px; background: #fdecea; color: #8a1c12; }}
  .muted {{ color: #5f6368; font-size: .9rem; text-align: center; }}
</style>
</head>
<body>
<main>
{logo}
{content}
</main>
</body>
</html>
"#,
        title = escape(title),
        product = escape(&ui.product_name),
        color = escape(&ui.primary_color),
    )
}

fn hidden_inputs(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(n, v)| format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">\n", escape(n), escape(v)))
        .collect()
}

/// The login form. `params` are the authorize parameters, re-posted as hidden inputs.
pub fn login_page(
    ui: &UiConfig,
    client_name: &str,
    params: &[(String, String)],
    username: &str,
    csrf: &str,
    error: Option<&str>,
) -> String {
    let error = error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    let content = format!(
        r#"<h1>Sign in to {product}</h1>
{error}<form method="post" action="/oauth2/authorize">
{hidden}<input type="hidden" name="csrf_token" value="{csrf}">
<label for="username">Username</label>
<input type="text" id="username" name="username" value="{username}" autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
<p class="muted">Continue to {client}</p>"#,
        product = escape(&ui.product_name),
        hidden = hidden_inputs(params),
        csrf = escape(csrf),
        username = escape(username),
        client = escape(client_name),
    );
    page(ui, "Sign in", &content)
}

/// The logout confirmation: a POST form, so a cross-site link cannot log anyone out.
pub fn logout_confirm_page(ui: &UiConfig, params: &[(String, String)], csrf: &str) -> String {
    let content = format!(
        r#"<h1>Sign out of {product}?</h1>
<form method="post" action="/oauth2/end_session">
{hidden}<input type="hidden" name="csrf_token" value="{csrf}">
<input type="hidden" name="confirm" value="yes">
<button type="submit">Sign out</button>
</form>"#,
        product = escape(&ui.product_name),
        hidden = hidden_inputs(params),
        csrf = escape(csrf),
    );
    page(ui, "Sign out", &content)
}

/// A page with a heading and a message.
pub fn message_page(ui: &UiConfig, title: &str, message: &str) -> String {
    page(ui, title, &format!("<h1>{}</h1>\n<p>{}</p>", escape(title), escape(message)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let ui = UiConfig::default();
        let p = login_page(&ui, "<app>", &[("state".into(), "\"><script>".into())], "a&b", "c", Some("<b>"));
        assert!(!p.contains("<script>"));
        assert!(p.contains("&quot;&gt;&lt;script&gt;"));
        assert!(p.contains("value=\"a&amp;b\""));
        assert!(p.contains("&lt;b&gt;"));
    }
}
