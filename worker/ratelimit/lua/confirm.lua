--[[ confirm.lua — a granted departure was written: move its entry to the real time.

depart.lua grants a *pending* entry, counted as departing at the time of each later decision
(its real time was unknown). The worker measures its lateness on its own monotonic clock, from
just before the call that granted to the moment the request body was written; that covers the
round trip, so grant + lateness is never earlier than the real write (Redis clock).

Confirming an entry that the gate already dropped (pending longer than its lease) adds it back
at its real time: the window check only needs times that are not too early.

KEYS[1]  departures sorted set (see depart.lua for the member formats)

ARGV[1]  the pending member depart.lua returned: "<grant_us>:<messages>:p:<token>"
ARGV[2]  lateness_us (>= 0)
ARGV[3]  ttl_ms of the set: window + lease, as depart.lua sets it

Returns the confirmed time in us.
]]

local grant, messages, token = string.match(ARGV[1], '^(%d+):(%d+):p:(.+)$')
if not grant then
  return redis.error_reply('not a pending departure: ' .. ARGV[1])
end
local at = tonumber(grant) + math.max(0, tonumber(ARGV[2]))
local at_text = string.format('%.0f', at)
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], at, at_text .. ':' .. messages .. ':' .. token)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return at
