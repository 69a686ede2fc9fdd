-- wrk script for the product read path: GET the URL given on the command line, e.g.
--   wrk -t1 -c64 -d10s -s bench/wrk/product.lua http://127.0.0.1:8000/api/v1/products/00000001
-- At the end it prints one machine-readable line (see report below) that benchrun parses.

wrk.method = "GET"
wrk.headers["Accept"] = "application/json"

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
