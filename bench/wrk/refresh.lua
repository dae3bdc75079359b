-- Refresh with rotation: wrk -t1 ... -s refresh.lua URL -- CHAINS_FILE CLIENT_ID
--
-- CHAINS_FILE holds one live refresh token per line, each the head of its own token
-- session (its own rotation chain). Every refresh answers with the chain's successor
-- token, so a chain can have at most one request in flight, and its next request must
-- carry the token from the previous response.
--
-- wrk does not tell a script which connection a request or response belongs to, so
-- chains are not tied to connections. Instead the (single) wrk thread keeps a FIFO
-- pool of chain heads: request() takes one out, response() parses the new
-- refresh_token from the body and puts it back. wrk calls response() for a
-- connection before that connection's next request(), so with at least as many
-- chains as connections the pool is never empty when a request is built, and no chain
-- is ever used twice at once (no reuse detection is triggered). scripts/bench gives
-- it 2x as many chains as connections. A non-200 answer loses its chain (counted in
-- `failures`); if the pool ever ran dry a GET /healthz is sent instead (counted in
-- `starved`). Both must be 0 for a clean run.
dofile(os.getenv("BENCH_LUA_DIR") .. "/summary.lua")

local pool = {}
local head, tail = 1, 0
local client_id
failures, starved = 0, 0

function init(args)
  client_id = args[2]
  for line in io.lines(args[1]) do
    if #line > 0 then
      tail = tail + 1
      pool[tail] = line
    end
  end
end

function request()
  if head > tail then
    starved = starved + 1
    return wrk.format("GET", "/healthz")
  end
  local rt = pool[head]
  pool[head] = nil
  head = head + 1
  return wrk.format("POST", "/oauth2/token",
    { ["Content-Type"] = "application/x-www-form-urlencoded" },
    "grant_type=refresh_token&client_id=" .. client_id .. "&refresh_token=" .. rt)
end

function response(status, headers, body)
  if status == 200 then
    local rt = body:match('"refresh_token":"([^"]+)"')
    if rt then
      tail = tail + 1
      pool[tail] = rt
      return
    end
    -- a 200 without a refresh token is /healthz (starved) or a broken answer
    if body:find('"access_token"', 1, true) then
      failures = failures + 1
    end
    return
  end
  failures = failures + 1
end
