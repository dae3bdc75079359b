-- The same request every time: wrk's static request, with the headers given by -H
-- on the command line (a session cookie or one bearer token). No Lua runs per
-- request, so the client costs as little as wrk can.
dofile(os.getenv("BENCH_LUA_DIR") .. "/summary.lua")
