-- A stream of wrong codes against the login endpoint (the regulation path).
wrk.method = "POST"
wrk.body = "code=000000&next=%2F"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"

done = function(summary, latency, requests)
  io.write(string.format('BENCH_JSON {"requests":%d,"duration_us":%d,"status_errors":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, summary.errors.status, latency:percentile(50), latency:percentile(99)))
end
