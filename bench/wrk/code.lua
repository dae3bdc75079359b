-- Authorization-code flow without the password step:
--   wrk -t1 ... -s code.lua URL -- SESSION_COOKIE AUTHORIZE_QUERY CODE_VERIFIER CLIENT_ID REDIRECT_URI
--
-- Two kinds of request, alternating per code:
--   1. GET /oauth2/authorize?AUTHORIZE_QUERY with the session cookie: a signed-in user
--      is sent straight back with a 302 whose Location carries a fresh code (one
--      SQLite commit);
--   2. POST /oauth2/token grant_type=authorization_code with that code and the PKCE
--      verifier: 200 with an access token, an ID token and a refresh token (two
--      signatures, one commit).
-- Codes go into a FIFO queue; request() sends an exchange when a code is waiting, else
-- an authorize. So requests/s counts both kinds, and code flows completed per second
-- are half of it (`exchanges` counts the successful exchanges). The latency figures mix
-- the two kinds. Any other answer counts in `failures`, which must be 0.
dofile(os.getenv("BENCH_LUA_DIR") .. "/summary.lua")

local codes = {}
local head, tail = 1, 0
local authorize, token_prefix
failures, exchanges = 0, 0

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function init(args)
  authorize = wrk.format("GET", "/oauth2/authorize?" .. args[2], { ["Cookie"] = "session=" .. args[1] })
  token_prefix = "grant_type=authorization_code&code_verifier=" .. urlencode(args[3])
    .. "&client_id=" .. urlencode(args[4]) .. "&redirect_uri=" .. urlencode(args[5]) .. "&code="
end

function request()
  if head <= tail then
    local code = codes[head]
    codes[head] = nil
    head = head + 1
    return wrk.format("POST", "/oauth2/token",
      { ["Content-Type"] = "application/x-www-form-urlencoded" }, token_prefix .. code)
  end
  return authorize
end

function response(status, headers, body)
  if status == 302 then
    local loc = headers["location"] or headers["Location"] or ""
    local code = loc:match("[?&]code=([^&]+)")
    if code then
      tail = tail + 1
      codes[tail] = code
      return
    end
  elseif status == 200 and body:find('"access_token"', 1, true) then
    exchanges = exchanges + 1
    return
  end
  failures = failures + 1
end
