--[[ key_rate.lua — one API request by one key: admit it, or say how long until it would be.

GCRA (generic cell rate algorithm): one stored time per key, the "theoretical arrival time"
of the next request at the key's steady rate. A request is admitted while that time is at
most `burst` intervals ahead of now, so a key may send `burst` requests at once and then
`rate` per second. One key in Redis, so every API process shares the same budget.

KEYS[1]  the key's arrival time ("td:api:rate:<key name>"), in us on the clock below
ARGV[1]  now in us, or "" for the server clock (redis TIME); tests pass a controlled clock
ARGV[2]  interval_us: 1e6 / the key's requests per second
ARGV[3]  burst: requests admitted at once after a quiet spell (>= 1)

Returns {admitted (1 or 0), retry_after_us (0 when admitted)}.
]]

local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local interval, burst = tonumber(ARGV[2]), tonumber(ARGV[3])

local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or 0), now)
local next_tat = tat + interval
local allow_at = next_tat - burst * interval
if now < allow_at then
  return {0, math.ceil(allow_at - now)}
end
redis.call('SET', KEYS[1], string.format('%.0f', next_tat),
  'PX', math.ceil((next_tat - now) / 1000) + 1000)
return {1, 0}
