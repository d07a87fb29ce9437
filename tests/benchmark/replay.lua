-- Replays pre-generated raw HTTP requests (NUL-separated, argv[1]) and counts statuses.
-- wrk threads split the file (request i goes to thread i % argv[2]), so no request
-- is sent twice unless a thread runs out of requests; such reuses are counted.

local threads = {}

function setup(thread)
  thread:set("thread_index", #threads)
  table.insert(threads, thread)
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  local file = assert(io.open(path, "rb"))
  local data = file:read("*a")
  file:close()
  reqs = {}
  local pos, i = 1, 0
  while true do
    local stop = string.find(data, "\0", pos, true)
    if not stop then break end
    if i % nthreads == thread_index then
      reqs[#reqs + 1] = string.sub(data, pos, stop - 1)
    end
    i = i + 1
    pos = stop + 1
  end
  nreqs = #reqs
  sent = 0
  statuses = {}
end

function request()
  sent = sent + 1
  return reqs[((sent - 1) % nreqs) + 1]
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
end

function done(summary, latency, requests)
  local reused, codes = 0, {}
  for _, t in ipairs(threads) do
    local n, s = t:get("nreqs"), t:get("sent")
    if s > n then reused = reused + (s - n) end
    for code, count in pairs(t:get("statuses")) do
      codes[code] = (codes[code] or 0) + count
    end
  end
  local parts = {}
  for code, count in pairs(codes) do
    parts[#parts + 1] = string.format('"%s":%d', code, count)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"reused":%d,"statuses":{%s},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, reused, table.concat(parts, ","),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9)))
end
