-- wrk script for the sold-out path: POST a flash-sale attempt to the URL given on the command
-- line, e.g.
--   FLASHEDGE_BENCH_TOKEN=<session token> wrk -t1 -c64 -d10s -s bench/wrk/soldout.lua \
--     http://127.0.0.1:8000/api/v1/flash-sales/<sale>/attempts
-- Once the sale is sold out the edge answers 410 {"status":"sold_out"} itself, so wrk counts
-- every answer under "Non-2xx or 3xx responses": that is expected here.
-- Environment: FLASHEDGE_BENCH_TOKEN (session token from POST /api/v1/session; sent as
-- "Authorization: Bearer <token>" when set), FLASHEDGE_BENCH_IDEMPOTENCY_KEY (default
-- "bench-soldout").

wrk.method = "POST"
wrk.body = '{"challenge_id":"bench","answer":"0"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json"
wrk.headers["Idempotency-Key"] = os.getenv("FLASHEDGE_BENCH_IDEMPOTENCY_KEY") or "bench-soldout"
local token = os.getenv("FLASHEDGE_BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

-- done prints "WRK_REPORT {json}": totals, error counts and latency percentiles in microseconds.
-- errors_status counts answers with status >= 400 (wrk's "Non-2xx or 3xx responses").
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_REPORT {"duration_us":%.0f,"requests":%.0f,"bytes":%.0f,' ..
    '"errors_connect":%.0f,"errors_read":%.0f,"errors_write":%.0f,"errors_status":%.0f,"errors_timeout":%.0f,' ..
    '"latency_us":{"min":%.0f,"mean":%.1f,"stdev":%.1f,"p50":%.0f,"p90":%.0f,"p99":%.0f,"p999":%.0f,"max":%.0f}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max))
end
