-- Resolve with many distinct bearer tokens, round-robin: wrk ... -s tokens.lua URL -- FILE
-- FILE has one access token per line. Every request is formatted once, in init(), so
-- the per-request client work is picking the next string.
dofile(os.getenv("BENCH_LUA_DIR") .. "/summary.lua")

local reqs = {}
local n, i = 0, 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      n = n + 1
      reqs[n] = wrk.format("GET", nil, { ["Authorization"] = "Bearer " .. line })
    end
  end
  if n == 0 then
    error("no tokens in " .. tostring(args[1]))
  end
end

function request()
  i = i % n + 1
  return reqs[i]
end
