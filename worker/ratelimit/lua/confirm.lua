--[[ confirm.lua — place a granted departure at the latest moment it can reach the provider.

depart.lua grants a *pending* entry, counted as departing at the time of each later decision
(its real time was unknown). The worker measures on its own monotonic clock, from just before
the call that granted: that covers the round trip, so grant + a measured time is never earlier
than the moment measured (Redis clock). It calls this twice:

1. when the body is written, with lateness + the account's margin (the arrival can lag the
   write; the margin bounds that lag from recent answers): the entry leaves the pending state;
2. when the answer's head has come, with lateness + write → head (+ a small floor): the
   provider had the request by then, so that is an exact bound on its arrival. The entry only
   ever moves earlier this way, and only while it is still there.

Either way an entry's time is never earlier than the request's arrival, which is what the
gate's windows rely on. Confirming an entry that the gate already dropped (pending longer
than its lease) adds it back: the window check only needs times that are not too early.

KEYS[1]  departures sorted set (see depart.lua for the member formats)

ARGV[1]  the pending member depart.lua returned: "<grant_us>:<messages>:p:<token>"
ARGV[2]  grant → the moment measured, in us (>= 0)
ARGV[3]  ttl_ms of the set: window + lease, as depart.lua sets it
ARGV[4]  "" for the first call; for the second, the time (us) the first one returned

Returns the entry's time in us.
]]

local grant, messages, token = string.match(ARGV[1], '^(%d+):(%d+):p:(.+)$')
if not grant then
  return redis.error_reply('not a pending departure: ' .. ARGV[1])
end
local at = tonumber(grant) + math.max(0, tonumber(ARGV[2]))
local suffix = ':' .. messages .. ':' .. token
if ARGV[4] ~= '' then
  local before = tonumber(ARGV[4])
  local old = string.format('%.0f', before) .. suffix
  if at >= before or not redis.call('ZSCORE', KEYS[1], old) then
    return before
  end
  redis.call('ZREM', KEYS[1], old)
else
  redis.call('ZREM', KEYS[1], ARGV[1])
end
redis.call('ZADD', KEYS[1], at, string.format('%.0f', at) .. suffix)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return at
