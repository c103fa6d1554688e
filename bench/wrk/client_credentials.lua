-- wrk script: POST a client-credentials token request (RFC 6749 section 4.4)
-- with client_secret_basic authentication to the peer's token endpoint.
--
-- Usage: wrk -c16 -d10s -s client_credentials.lua http://127.0.0.1:8801/token
-- Environment: PEER_CLIENT_ID, PEER_CLIENT_SECRET (defaults match peer/server.mjs),
-- PEER_SCOPE (default "api:read").

local client_id = os.getenv("PEER_CLIENT_ID") or "bench-client"
local client_secret = os.getenv("PEER_CLIENT_SECRET") or "bench-secret"
local scope = os.getenv("PEER_SCOPE") or "api:read"

local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

-- Standard base64 with padding, as HTTP Basic authentication (RFC 7617) uses it.
local function base64(data)
  local out = {}
  for i = 1, #data, 3 do
    local a, b, c = data:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local c1 = math.floor(n / 262144) % 64
    local c2 = math.floor(n / 4096) % 64
    local c3 = math.floor(n / 64) % 64
    local c4 = n % 64
    out[#out + 1] = alphabet:sub(c1 + 1, c1 + 1)
    out[#out + 1] = alphabet:sub(c2 + 1, c2 + 1)
    out[#out + 1] = b and alphabet:sub(c3 + 1, c3 + 1) or "="
    out[#out + 1] = c and alphabet:sub(c4 + 1, c4 + 1) or "="
  end
  return table.concat(out)
end

-- The client id and secret are form-urlencoded before the Basic encoding
-- (RFC 6749 section 2.3.1); the defaults contain no reserved characters.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Accept"] = "application/json"
wrk.headers["Authorization"] = "Basic " .. base64(client_id .. ":" .. client_secret)
wrk.body = "grant_type=client_credentials&scope=" .. scope:gsub(":", "%%3A")

-- Count responses other than 200 so that a run that only measured errors
-- is visible in the summary.
local failures = 0

function response(status, headers, body)
  if status ~= 200 then
    failures = failures + 1
    if failures <= 3 then
      io.stderr:write("token request failed: HTTP " .. status .. " " .. body .. "\n")
    end
  end
end

function done(summary, latency, requests)
  local p50 = latency:percentile(50)
  local p99 = latency:percentile(99)
  io.write(string.format(
    "BENCH_JSON {\"requests\": %d, \"duration_us\": %d, \"errors_status\": %d, " ..
    "\"errors_connect\": %d, \"errors_read\": %d, \"errors_write\": %d, " ..
    "\"errors_timeout\": %d, \"latency_p50_us\": %d, \"latency_p99_us\": %d, " ..
    "\"latency_mean_us\": %.1f}\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, p50, p99, latency.mean))
end
