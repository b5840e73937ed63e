-- POST a provider's tracking webhook, as the provider posts it (one format per run):
--   BENCH_PROVIDER=sendgrid  a JSON array of BENCH_BATCH events (SendGrid batches up to 1,000)
--   BENCH_PROVIDER=postmark  one event a request
-- Events name seeded outreach by provider message id (bench-pm-<n>), with unique event ids;
-- basic auth comes with -H (ANYMAIL_WEBHOOK_SECRET).
dofile("bench/wrk/report.lua")

local counter, headers, run, messages, batch, provider = 0, nil, nil, nil, nil, nil
local kinds = {"delivered", "open", "click"}
local postmark_kinds = {"Delivery", "Open", "Click"}

function init(args)
  headers = json_headers()
  run = os.getenv("BENCH_RUN_TAG") or "run"
  messages = tonumber(os.getenv("BENCH_OUTREACH") or "50000")
  batch = tonumber(os.getenv("BENCH_BATCH") or "100")
  provider = os.getenv("BENCH_PROVIDER") or "sendgrid"
  math.randomseed(thread_number)
end

local function sendgrid_event()
  counter = counter + 1
  local kind = kinds[counter % 3 + 1]
  return string.format(
    '{"email":"bench%d@bench.example","timestamp":1764576000,"event":"%s","sg_event_id":"wrk-%s-%d-%d",'
    .. '"sg_message_id":"sg.%d","anymail_id":"bench-pm-%d","category":["outreach"],'
    .. '"url":"https://bench.example/pricing","useragent":"Mozilla/5.0"}',
    counter, kind, run, thread_number, counter, counter, math.random(0, messages - 1))
end

local function postmark_event()
  counter = counter + 1
  local kind = postmark_kinds[counter % 3 + 1]
  local n = math.random(0, messages - 1)
  return string.format(
    '{"RecordType":"%s","MessageID":"bench-pm-%d","Recipient":"bench%d@bench.example",'
    .. '"DeliveredAt":"2026-12-01T08:00:00Z","ReceivedAt":"2026-12-01T08:00:00Z","FirstOpen":true,'
    .. '"OriginalLink":"https://bench.example/pricing","Tag":"outreach","Metadata":{},'
    .. '"Details":"wrk-%s-%d-%d","ServerID":1,"MessageStream":"outbound"}',
    kind, n, counter, run, thread_number, counter)
end

function request()
  if provider == "postmark" then
    return wrk.format("POST", "/webhooks/postmark/tracking/", headers, postmark_event())
  end
  local events = {}
  for i = 1, batch do events[i] = sendgrid_event() end
  return wrk.format("POST", "/webhooks/sendgrid/tracking/", headers, "[" .. table.concat(events, ",") .. "]")
end
