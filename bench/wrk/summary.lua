-- Shared by every wrk script of the benchmarks (loaded with dofile). Prints one
-- machine-readable line at the end of a run, which scripts/bench parses:
--   BENCH {"requests":..,"duration_us":..,"p50_us":..,"p99_us":..,"p999_us":..,...}
-- wrk's own --latency output stops at p99; p99.9 comes from latency:percentile here.
-- Scripts that count failures of their own keep them in the thread globals
-- `failures`, `starved` and `exchanges`, which done() sums over the threads.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local failures, starved, exchanges = 0, 0, 0
  for _, t in ipairs(threads) do
    failures = failures + (t:get("failures") or 0)
    starved = starved + (t:get("starved") or 0)
    exchanges = exchanges + (t:get("exchanges") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"p50_us":%.1f,"p99_us":%.1f,"p999_us":%.1f,"mean_us":%.1f,'
      .. '"max_us":%.1f,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,'
      .. '"failures":%d,"starved":%d,"exchanges":%d}\n',
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.mean, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout, failures, starved, exchanges))
end
