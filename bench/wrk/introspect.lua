-- RFC 7662 introspection of one token at oidc-provider: the same POST every time,
-- with client_secret_basic. BENCH_INTROSPECT_TOKEN and BENCH_INTROSPECT_BASIC (the
-- base64 of client_id:secret) come from the environment; set at load time, so wrk
-- still sends a static, pre-built request.
dofile(os.getenv("BENCH_LUA_DIR") .. "/summary.lua")

wrk.method = "POST"
wrk.body = "token=" .. os.getenv("BENCH_INTROSPECT_TOKEN")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("BENCH_INTROSPECT_BASIC")
