-- POST /api/v1/engagements: one "opened" event a request for a random seeded outreach message.
dofile("bench/wrk/report.lua")

local counter, headers, run, messages = 0, nil, nil, nil

function init(args)
  headers = json_headers()
  run = os.getenv("BENCH_RUN_TAG") or "run"
  messages = tonumber(os.getenv("BENCH_OUTREACH") or "50000")
  math.randomseed(thread_number)
end

function request()
  counter = counter + 1
  local body = string.format('{"event_id":"wrk-%s-%d-%d","event_type":"opened","message_id":"bench-%d@bench"}',
    run, thread_number, counter, math.random(0, messages - 1))
  return wrk.format("POST", "/api/v1/engagements", headers, body)
end
