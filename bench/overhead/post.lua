-- wrk script for bench/overhead.
--
-- POSTs the JSON bodies listed (one path a line) in the file named by
-- $OVH_BODIES to /v1/chat/completions, round-robin, each thread starting at
-- its own offset, as pre-formatted requests (no Lua work per request beyond
-- an index). No response() callback: defining one makes wrk hand every
-- response to Lua, and the client would become the bottleneck.
--
-- $OVH_DIRECT ("host:port,host:port,..."): thread i connects to pod
-- i mod n instead of the URL (the direct-to-pods rows; with -t equal to the
-- number of pods each pod gets -c/t connections, as behind a round-robin
-- proxy).
-- $OVH_DELAY_MS: each connection waits that long before each request (the
-- paced, low-concurrency latency runs).
--
-- done() prints one JSON line: requests, duration, errors, latency (us).
local reqs, n, i = {}, 0, 0
local nthreads = 0

function setup(thread)
    thread:set("thread_id", nthreads)
    local direct = os.getenv("OVH_DIRECT")
    if direct then
        local pods = {}
        for hp in direct:gmatch("[^,]+") do
            pods[#pods + 1] = hp
        end
        local host, port = pods[nthreads % #pods + 1]:match("^(.+):(%d+)$")
        thread.addr = wrk.lookup(host, port)[1]
    end
    nthreads = nthreads + 1
end

function init(args)
    for path in io.lines(os.getenv("OVH_BODIES")) do
        local f = assert(io.open(path, "rb"))
        local b = f:read("*a")
        f:close()
        n = n + 1
        reqs[n] = wrk.format("POST", "/v1/chat/completions",
                             {["Content-Type"] = "application/json"}, b)
    end
    i = ((thread_id or 0) * 7) % n
end

function request()
    i = i % n + 1
    return reqs[i]
end

local d = tonumber(os.getenv("OVH_DELAY_MS") or "")
if d then
    function delay()
        return d
    end
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        '{"requests":%d,"duration_us":%d,"bytes":%d,' ..
        '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
        '"lat_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d}}\n',
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency.mean, latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency.max))
end
