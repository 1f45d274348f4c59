--[[ depart.lua — the last check before a request leaves: a sliding-window gate on actual
departures, so that no window at the provider sees more than the configured rate even when
workers are descheduled between their reserved slot and the send.

reserve.lua paces requests into evenly spaced slots (that is what keeps utilisation high);
this script records when each request really departs and refuses one that would put more
than the limit into any (1 s + jitter) window of departures. It rarely refuses: only when a
delayed sender would bunch with the next one.

KEYS[1]  departures sorted set   member "<depart_us>:<messages>:<token>", score depart_us

ARGV[1]  now in us, or "" to use the server clock (redis TIME); tests pass a controlled clock
ARGV[2]  window_us: 1 s plus the jitter margin
ARGV[3]  requests per window (0 = no limit)
ARGV[4]  messages per window (0 = no limit)
ARGV[5]  messages in this request
ARGV[6]  token: makes the member unique

Returns wait_us: 0 = recorded, send now; > 0 = not recorded, ask again after this long.
]]

local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local window = tonumber(ARGV[2])
local max_req = tonumber(ARGV[3])
local max_msg = tonumber(ARGV[4])
local count = tonumber(ARGV[5])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', now - window))
local entries = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
local n = #entries / 2

-- Requests: the (max_req)-th newest departure must have left the window.
if max_req > 0 and n >= max_req then
  local oldest_needed = tonumber(entries[(n - max_req) * 2 + 2])
  return math.max(1, oldest_needed + window - now)
end
-- Messages: drop departures, oldest first, until this request fits.
if max_msg > 0 then
  local total = count
  for i = 1, n do
    local member = entries[i * 2 - 1]
    total = total + tonumber(string.match(member, '^%d+:(%d+):'))
  end
  if total > max_msg then
    local i = 1
    while total > max_msg and i <= n do
      total = total - tonumber(string.match(entries[i * 2 - 1], '^%d+:(%d+):'))
      i = i + 1
    end
    return math.max(1, tonumber(entries[(i - 1) * 2]) + window - now)
  end
end
redis.call('ZADD', KEYS[1], now, string.format('%.0f', now) .. ':' .. count .. ':' .. ARGV[6])
redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
return 0
