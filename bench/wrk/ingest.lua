-- POST /api/v1/leads/ingest with batches of 100 new Lightfield lead.created events.
dofile("bench/wrk/report.lua")

local counter, headers, run = 0, nil, nil

function init(args)
  headers = json_headers()
  run = os.getenv("BENCH_RUN_TAG") or "run"
end

function request()
  local events = {}
  for i = 1, 100 do
    counter = counter + 1
    events[i] = string.format(
      '{"event_type":"lead.created","timestamp":"2026-11-25T08:00:00Z","lightfield_id":"wrk-%s-%d-%d",'
      .. '"company":{"name":"Load %d","size":"51-200","industry":"software","website":"https://load.example.com"},'
      .. '"contact":{"name":"Ada Load","email":"ada%d-%d@example.com","title":"CTO"},'
      .. '"source":{"channel":"webinar"},"metadata":{"budget_range":"50k-100k","timeline":"this quarter",'
      .. '"tech_stack":["python"],"pain_points":["manual prospecting"]}}',
      run, thread_number, counter, counter, thread_number, counter)
  end
  return wrk.format("POST", "/api/v1/leads/ingest", headers, "[" .. table.concat(events, ",") .. "]")
end
