#!/usr/bin/env python3
"""Helpers of the HTTP benchmarks (scripts/bench), standard library only.

Everything here runs outside the timed wrk runs: setting up a data directory, logging
in, minting tokens, refresh chains and the pre-flight checks, and in the end turning
the per-run results into one markdown table. Only loopback addresses are used.

Subcommands (all print errors to stderr and exit non-zero on any surprise):

  configure DIR                 add the rotation-off client `bench-norot` to DIR/latchkey.yaml and
                                raise the token endpoint's rate limits out of reach
  login BASE OUTDIR             log in user `bench` (password on stdin) with the demo client and with
                                bench-norot; writes OUTDIR/{cookie,at,rt_norot,verifier,challenge}
  mint BASE RT N OUT            N distinct access tokens from the rotation-off refresh token, one per line
  chains BASE COOKIE N OUT      N fresh rotation-on refresh tokens (N authorize + code exchanges), one per line
  check-resolve URL [HEADER]    GET URL with the header; require x-authgear-session-valid: true
  check-refresh BASE RT         one rotating refresh must answer 200 with a new refresh_token
  check-code BASE COOKIE        one authorize (302 with code) + exchange (200 with access_token)
  check-introspect URL USER PASS TOKEN   POST the token; require "active": true
  jwks BASE OUT                 save BASE/oauth2/jwks to OUT
  record RESULTS SCENARIO SYSTEM PINNED CPU_TICKS RSS_KB WRK_CPU_S BUSY_TICKS
                                append one result (JSON) to RESULTS; the done() line of wrk on stdin
  table RESULTS                 the markdown table of a results file (one JSON object per line)
"""

import base64
import html
import hashlib
import http.client
import json
import re
import statistics
import sys
import threading
import urllib.parse

DEMO = "demo"
NOROT = "bench-norot"
REDIRECT = "http://127.0.0.1:4000/callback"
USERNAME = "bench"


def die(msg):
    print(f"lk.py: {msg}", file=sys.stderr)
    sys.exit(1)


class Conn:
    """One keep-alive HTTP/1.1 connection to a loopback origin."""

    def __init__(self, base):
        u = urllib.parse.urlsplit(base)
        if u.hostname not in ("127.0.0.1", "localhost", "::1"):
            die(f"refusing a non-loopback target: {base}")
        self.host, self.port = u.hostname, u.port
        self.c = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def req(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        if body is not None and not isinstance(body, bytes):
            body = urllib.parse.urlencode(body).encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        for attempt in (0, 1):
            try:
                self.c.request(method, path, body=body, headers=headers)
                r = self.c.getresponse()
                data = r.read()
                return r.status, r.headers, data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if attempt:
                    raise
                self.c.close()
                self.c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        raise AssertionError("unreachable")


def pkce():
    verifier = base64.urlsafe_b64encode(hashlib.sha256(b"latchkey-bench-verifier").digest()).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_query(client_id, challenge):
    return urllib.parse.urlencode(
        {
            "client_id": client_id,
            "response_type": "code",
            "scope": "openid offline_access",
            "redirect_uri": REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "x",
        },
        quote_via=urllib.parse.quote,
    )


def cookies_of(headers):
    out = {}
    for v in headers.get_all("Set-Cookie") or []:
        name, _, rest = v.partition("=")
        out[name.strip()] = rest.split(";", 1)[0]
    return out


def code_from(status, headers):
    if status != 302:
        die(f"authorize answered {status}, expected 302")
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(headers["Location"]).query)
    if "code" not in q:
        die(f"authorize redirect without a code: {headers['Location']}")
    return q["code"][0]


def exchange(c, client_id, code, verifier):
    st, _, body = c.req(
        "POST",
        "/oauth2/token",
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": client_id,
            "code_verifier": verifier,
        },
    )
    if st != 200:
        die(f"code exchange answered {st}: {body[:200]!r}")
    return json.loads(body)


def login(c, client_id, password):
    """Password login through the form; returns (session cookie, token response)."""
    verifier, challenge = pkce()
    path = "/oauth2/authorize?" + authorize_query(client_id, challenge)
    st, h, body = c.req("GET", path)
    if st != 200:
        die(f"GET authorize answered {st}")
    csrf = cookies_of(h).get("csrf") or die("no csrf cookie")
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', body.decode()))
    if "csrf_token" not in form:
        die("no csrf_token in the login form")
    form = {k: html.unescape(v) for k, v in form.items()}
    form.update(username=USERNAME, password=password)
    st, h, body = c.req("POST", "/oauth2/authorize", form, {"Cookie": f"csrf={csrf}"})
    code = code_from(st, h)
    session = cookies_of(h).get("session") or die("login set no session cookie")
    return session, exchange(c, client_id, code, verifier)


# The benchmark is one client address and one user doing thousands of token requests a
# second: exactly what the token endpoint's rate limits stop. They stay on (so their
# bookkeeping is measured) with limits no run can reach.
UNREACHABLE_LIMIT = 1_000_000_000
BENCH_LIMITS = ("token_per_ip", "token_per_user", "client_credentials_per_client")


def cmd_configure(data_dir):
    path = f"{data_dir}/latchkey.yaml"
    text = open(path).read()
    if f"client_id: {NOROT}" in text:
        return
    if not text.endswith("\n"):
        text += "\n"
    # `latchkey init` ends the file with oauth.clients; the second client goes there.
    if not re.search(r"\n    - client_id: demo\n(      .*\n|\s*\n)*$", text):
        die(f"{path} does not end with the demo client; update bench/lk.py")
    text += f"""    # Added by bench/lk.py: a second client with rotation off, to mint many access
    # tokens from one refresh token.
    - client_id: {NOROT}
      name: Benchmark client (rotation off)
      x_application_type: spa
      redirect_uris:
        - {REDIRECT}
      grant_types: [authorization_code, refresh_token]
      access_token_lifetime_seconds: 14400
      refresh_token_rotation_enabled: false
"""
    if re.search(r"^rate_limits:", text, re.M):
        for key in BENCH_LIMITS:
            text, n = re.subn(
                rf"^(\s+{key}:\s*\{{\s*limit:\s*)\d+", rf"\g<1>{UNREACHABLE_LIMIT}", text, count=1, flags=re.M
            )
            if n != 1:
                die(f"{path}: cannot find rate_limits.{key} to raise it")
    else:
        text += "\n# Added by bench/lk.py: limits no benchmark run reaches.\nrate_limits:\n" + "".join(
            f"  {key}: {{ limit: {UNREACHABLE_LIMIT}, window_seconds: 60 }}\n" for key in BENCH_LIMITS
        )
    open(path, "w").write(text)


def cmd_login(base, outdir):
    password = sys.stdin.readline().rstrip("\n")
    c = Conn(base)
    session, tok = login(c, DEMO, password)
    _, tok2 = login(c, NOROT, password)
    if "refresh_token" not in tok2:
        die("bench-norot login returned no refresh_token")
    verifier, challenge = pkce()
    files = {
        "cookie": session,
        # The same-token scenarios use this one: bench-norot's tokens live 4 hours.
        "at": tok2["access_token"],
        "rt_norot": tok2["refresh_token"],
        "verifier": verifier,
        "challenge": challenge,
    }
    for name, value in files.items():
        with open(f"{outdir}/{name}", "w") as f:
            f.write(value + "\n")


def parallel(n, workers, fn):
    """Calls fn(state, i) for i in range(n) over `workers` threads (state: a dict per
    thread, for its connection); returns the results in order."""
    out = [None] * n
    errors = []

    def run(w):
        try:
            state = {}
            for i in range(w, n, workers):
                out[i] = fn(state, i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=run, args=(w,)) for w in range(workers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        die(f"worker failed: {errors[0]!r}")
    return out


def cmd_mint(base, rt, n, out):
    n = int(n)

    def one(state, _i):
        c = state.setdefault("c", Conn(base))
        st, _, body = c.req(
            "POST", "/oauth2/token", {"grant_type": "refresh_token", "refresh_token": rt, "client_id": NOROT, "scope": "offline_access"}
        )
        if st != 200:
            die(f"refresh (rotation off) answered {st}: {body[:200]!r}")
        return json.loads(body)["access_token"]

    tokens = parallel(n, 4, one)
    if len(set(tokens)) != n:
        die("minted tokens are not distinct")
    with open(out, "w") as f:
        f.write("\n".join(tokens) + "\n")


def cmd_chains(base, cookie, n, out):
    n = int(n)
    verifier, challenge = pkce()
    path = "/oauth2/authorize?" + authorize_query(DEMO, challenge)

    def one(state, _i):
        c = state.setdefault("c", Conn(base))
        st, h, _ = c.req("GET", path, headers={"Cookie": f"session={cookie}"})
        tok = exchange(c, DEMO, code_from(st, h), verifier)
        return tok.get("refresh_token") or die("no refresh_token in the exchange")

    rts = parallel(n, 4, one)
    with open(out, "w") as f:
        f.write("\n".join(rts) + "\n")


def cmd_check_resolve(url, header=None):
    u = urllib.parse.urlsplit(url)
    c = Conn(url)
    headers = {}
    if header:
        k, _, v = header.partition(":")
        headers[k.strip()] = v.strip()
    st, h, _ = c.req("GET", u.path + ("?" + u.query if u.query else ""), headers=headers)
    valid = h.get("x-authgear-session-valid")
    if st != 200 or valid != "true":
        die(f"pre-flight: GET {url} answered {st} with x-authgear-session-valid={valid!r}, expected 200 and 'true'")


def cmd_check_refresh(base, rt):
    c = Conn(base)
    st, _, body = c.req("POST", "/oauth2/token", {"grant_type": "refresh_token", "refresh_token": rt, "client_id": DEMO})
    if st != 200:
        die(f"pre-flight: rotating refresh answered {st}: {body[:200]!r}")
    new = json.loads(body).get("refresh_token")
    if not new or new == rt:
        die("pre-flight: rotating refresh returned no new refresh_token")


def cmd_check_code(base, cookie):
    verifier, challenge = pkce()
    c = Conn(base)
    st, h, _ = c.req("GET", "/oauth2/authorize?" + authorize_query(DEMO, challenge), headers={"Cookie": f"session={cookie}"})
    tok = exchange(c, DEMO, code_from(st, h), verifier)
    if "access_token" not in tok:
        die("pre-flight: code exchange without access_token")


def cmd_check_introspect(url, user, password, token):
    u = urllib.parse.urlsplit(url)
    c = Conn(url)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    st, _, body = c.req("POST", u.path, {"token": token}, {"Authorization": f"Basic {auth}"})
    if st != 200 or json.loads(body).get("active") is not True:
        die(f"pre-flight: introspection answered {st}: {body[:300]!r}, expected \"active\": true")


def cmd_jwks(base, out):
    st, _, body = Conn(base).req("GET", "/oauth2/jwks")
    if st != 200 or b'"keys"' not in body:
        die(f"GET /oauth2/jwks answered {st}")
    with open(out, "wb") as f:
        f.write(body)


def cmd_record(results, scenario, system, pinned, cpu_ticks, rss_kb, wrk_cpu_s, busy_ticks):
    import os

    line = sys.stdin.read().strip()
    if not line.startswith("BENCH "):
        die(f"no BENCH line from wrk's done(): {line[:200]!r}")
    w = json.loads(line[len("BENCH "):])
    if w["requests"] <= 0:
        die(f"{scenario} / {system}: wrk completed no request")
    secs = w["duration_us"] / 1e6
    clk_tck = os.sysconf("SC_CLK_TCK")
    server_s = int(cpu_ticks) / clk_tck
    others = max(0.0, (int(busy_ticks) / clk_tck - server_s - float(wrk_cpu_s)) / secs)
    errors = sum(w[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout", "failures", "starved"))
    r = {
        "scenario": scenario,
        "system": system,
        "pinned": pinned,
        "requests": w["requests"],
        "rps": w["requests"] / secs,
        "p50_us": w["p50_us"],
        "p99_us": w["p99_us"],
        "p999_us": w["p999_us"],
        "cpu_us_per_req": int(cpu_ticks) * 1e6 / clk_tck / w["requests"],
        "rss_mib": int(rss_kb) / 1024,
        "wrk_cpu_s": float(wrk_cpu_s),
        "others_cores": others,
        "errors": errors,
        "exchanges": w["exchanges"],
        "wrk": w,
    }
    with open(results, "a") as f:
        f.write(json.dumps(r) + "\n")
    warn = f"  ERRORS: {errors}" if errors else ""
    print(
        f"    {r['rps']:10,.0f} req/s  p50 {fmt_ms(r['p50_us'])}  p99 {fmt_ms(r['p99_us'])}  "
        f"p99.9 {fmt_ms(r['p999_us'])}  cpu {r['cpu_us_per_req']:.1f} us/req  rss {r['rss_mib']:.1f} MiB  others {others:.2f} cores{warn}",
        file=sys.stderr,
    )


def fmt_ms(us):
    if us >= 100_000:
        return f"{us / 1000:.0f} ms"
    if us >= 10_000:
        return f"{us / 1000:.1f} ms"
    return f"{us / 1000:.2f} ms"


def fmt_ratio(x):
    return f"{x:.2f}×" if x >= 0.1 else f"{x:.2g}×"


def fmt_rps(x):
    return f"{x:,.0f}"


def cmd_table(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    groups = {}
    order = []
    for r in rows:
        key = (r["scenario"], r["system"], r["pinned"])
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(r)

    def med(rs, k):
        return statistics.median(x[k] for x in rs)

    floor, floor_cpu = {}, {}
    for (scenario, system, pinned), rs in groups.items():
        if system == "floor":
            floor[pinned] = med(rs, "rps")
            floor_cpu[pinned] = med(rs, "cpu_us_per_req")

    n = max(len(v) for v in groups.values())
    print(
        f"| Scenario | System | Pinned | Req/s (median of {n}) | p50 | p99 | p99.9 | CPU µs/req | RSS MiB "
        "| Req/s vs floor | CPU/req vs floor | Others' CPU (cores) |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    # Pinned rows first, then unpinned, each in the order the scenarios ran.
    for pinned in ("yes", "no"):
        for key in order:
            scenario, system, p = key
            if p != pinned:
                continue
            rs = groups[key]
            rps, cpu = med(rs, "rps"), med(rs, "cpu_us_per_req")
            ratio = fmt_ratio(rps / floor[pinned]) if floor.get(pinned) else "n/a"
            cpu_ratio = f"{cpu / floor_cpu[pinned]:.1f}×" if floor_cpu.get(pinned) else "n/a"
            errs = sum(x.get("errors", 0) for x in rs)
            note = f" ({errs} errors)" if errs else ""
            if any(x.get("exchanges") for x in rs):
                flows = statistics.median(x["exchanges"] / (x["wrk"]["duration_us"] / 1e6) for x in rs)
                note += f" ({flows:,.0f} code flows/s)"
            print(
                f"| {scenario} | {system}{note} | {pinned} | {fmt_rps(rps)} | {fmt_ms(med(rs, 'p50_us'))} | "
                f"{fmt_ms(med(rs, 'p99_us'))} | {fmt_ms(med(rs, 'p999_us'))} | {cpu:.1f} | "
                f"{max(x['rss_mib'] for x in rs):.1f} | {ratio} | {cpu_ratio} | "
                f"{med(rs, 'others_cores'):.2f} |"
            )


COMMANDS = {
    "configure": cmd_configure,
    "login": cmd_login,
    "mint": cmd_mint,
    "chains": cmd_chains,
    "check-resolve": cmd_check_resolve,
    "check-refresh": cmd_check_refresh,
    "check-code": cmd_check_code,
    "check-introspect": cmd_check_introspect,
    "jwks": cmd_jwks,
    "record": cmd_record,
    "table": cmd_table,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    COMMANDS[sys.argv[1]](*sys.argv[2:])
