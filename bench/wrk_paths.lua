-- wrk script of the HTTP scenario (bench/wrk.py): GET the paths of a file, one a line,
-- each thread starting at its own place in the list; at the end, one line
-- "BENCH_JSON {...}" with the latency percentiles (microseconds) and the error counts.
local threads_made = 0

function setup(thread)
   thread:set("thread_number", threads_made)
   threads_made = threads_made + 1
end

local paths = {}
local counter = 0

function init(args)
   for line in io.lines(args[1]) do
      if #line > 0 then paths[#paths + 1] = line end
   end
   counter = (thread_number or 0) * 7919
end

function request()
   counter = counter + 1
   return wrk.format("GET", paths[counter % #paths + 1])
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, ' ..
      '"max_us": %d, "status_errors": %d, "socket_errors": %d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
      latency:percentile(99), latency.max, e.status, e.connect + e.read + e.write + e.timeout))
end
