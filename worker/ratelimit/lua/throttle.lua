--[[ throttle.lua — the provider said "too fast" (NXCloud 13008, HTTP 429): slow the account.

KEYS[1]  state hash of the account ("td:rl:{acct}:state", see reserve.lua); fields used here:
         f0 (factor when last set), t0 (when set, us), tdec (last decrease, us), gate (us)
ARGV[1]  now in us, or "" for the server clock: `now`, set by _prelude.lua
ARGV[2]  decrease: multiply the current factor by this (e.g. 0.5)
ARGV[3]  floor: the factor never goes below this
ARGV[4]  recovery per second: the factor regains this much per second, up to 1
ARGV[5]  cooldown_us: reports within this long after a decrease describe the same overload
         (every request in flight fails together) and do not decrease again
ARGV[6]  retry_after_us: the provider's Retry-After (0 = none): no send before now + this

Returns the factor now in force, in millionths (1000000 = full configured rate).
The factor is applied by reserve.lua to requests/s and messages/s; recovery is computed
lazily from (f0, t0), so no success reports (and no extra round trips) are needed.
]]

local decrease, floor = tonumber(ARGV[2]), tonumber(ARGV[3])
local recovery, cooldown = tonumber(ARGV[4]), tonumber(ARGV[5])
local retry_after = tonumber(ARGV[6])

local st = redis.call('HMGET', KEYS[1], 'f0', 't0', 'tdec', 'gate')
local factor = 1
if st[1] then
  factor = math.min(1, tonumber(st[1]) + recovery * (now - tonumber(st[2])) / 1e6)
end
local tdec = tonumber(st[3])
if not tdec or now - tdec >= cooldown then
  factor = math.max(floor, factor * decrease)
  redis.call('HSET', KEYS[1], 'f0', string.format('%.6f', factor),
    't0', string.format('%.0f', now), 'tdec', string.format('%.0f', now))
end
local gate = tonumber(st[4]) or 0
if retry_after > 0 and now + retry_after > gate then
  gate = now + retry_after
  redis.call('HSET', KEYS[1], 'gate', string.format('%.0f', gate))
end
local ttl = math.max(3600000, math.ceil((gate - now) / 1000) + 60000)
if recovery > 0 then ttl = math.max(ttl, math.ceil((1 - factor) / recovery * 1000) + 60000) end
redis.call('PEXPIRE', KEYS[1], ttl)
return math.floor(factor * 1e6)
