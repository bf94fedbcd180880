-- wrk hooks: done() prints one JSON line for run.sh to parse.
-- With BENCH_CHECK_STATUS=1 (used for the warm-up) a response() hook counts every status outside
-- 2xx, because wrk itself only counts >= 400 and a gateway answering 301/302 would otherwise look
-- healthy. It is off for the measured run: a response() hook makes wrk parse every response in Lua.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

if os.getenv("BENCH_CHECK_STATUS") == "1" then
  bad = 0
  first_bad = 0
  function response(status, headers, body)
    if status < 200 or status > 299 then
      bad = bad + 1
      if first_bad == 0 then first_bad = status end
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local non2xx, extra = e.status, ""
  if os.getenv("BENCH_CHECK_STATUS") == "1" then
    non2xx = 0
    local first_bad = 0
    for _, t in ipairs(threads) do
      non2xx = non2xx + t:get("bad")
      if first_bad == 0 then first_bad = t:get("first_bad") end
    end
    extra = string.format(',"first_bad_status":%d', first_bad)
  end
  io.write(string.format(
    '{"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"non2xx":%d,"errors":%d,"requests":%d,' ..
    '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d}%s}\n',
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    non2xx, e.connect + e.read + e.write + e.timeout, summary.requests,
    e.connect, e.read, e.write, e.timeout, extra))
end
