--[[ defer.lua — the provider says this number hit its own cap (NXCloud 13007): hold it back.

KEYS[1]  the recipient's key ("td:rl:{acct}:r:<phone>"), layout as in reserve.lua:
         "<blocked_until_ms> <sent_ms> <sent_ms> ..."
ARGV[1]  now in us, or "" for the server clock: `now`, set by _prelude.lua
ARGV[2]  how long to hold the number back, in us

Returns blocked_until in ms (server clock). reserve.lua defers the number until then.
The key keeps whatever TTL it had if that is longer (its send history must survive).
]]

local now_ms = math.floor(now / 1000)
local until_ms = math.ceil((now + tonumber(ARGV[2])) / 1000)

local parts = {}
local v = redis.call('GET', KEYS[1])
if v then
  -- stamps are kept as they are (recipient_depart.lua marks departures with a letter)
  for tok in string.gmatch(v, '%S+') do parts[#parts + 1] = tok end
end
if parts[1] and tonumber(parts[1]) > until_ms then until_ms = tonumber(parts[1]) end
parts[1] = string.format('%.0f', until_ms)
local ttl = math.max(1, redis.call('PTTL', KEYS[1]), until_ms - now_ms)
redis.call('SET', KEYS[1], table.concat(parts, ' '), 'PX', ttl)
return until_ms
