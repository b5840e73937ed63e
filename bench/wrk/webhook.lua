-- POST one provider webhook body (a file, BENCH_WEBHOOK_BODY) again and again, with the
-- webhook secret as basic auth (BENCH_WEBHOOK_AUTH, already base64).
dofile("bench/wrk/report.lua")

local body, headers = nil, nil

function init(args)
  local file = assert(io.open(os.getenv("BENCH_WEBHOOK_BODY"), "rb"))
  body = file:read("*a")
  file:close()
  headers = json_headers()
  headers["Authorization"] = "Basic " .. os.getenv("BENCH_WEBHOOK_AUTH")
end

function request()
  return wrk.format("POST", nil, headers, body)
end
