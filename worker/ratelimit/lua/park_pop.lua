--[[ park_pop.lua — take the soonest booked batch whose slot has come (or comes within a lead).

A batch that booked a rate slot further ahead than a worker process may sleep is *parked*: its
entry waits here, and a wake-up task is published for its slot, so no process waits for it
(worker/ratelimit/booking.py). Any dispatch of the account takes due entries first; taking is
atomic, so each parked batch is sent by exactly one process.

KEYS[1]  parked sorted set "td:rl:{acct}:parked": member = the booking (JSON), score = slot (us)

ARGV[1]  now in us, or "" for the server clock: `now`, set by _prelude.lua
ARGV[2]  lead_us: an entry is due when its slot is at most this far ahead

Returns {member, slot_us, now_us} for a due entry (removed); {"", soonest_us, now_us} when none
is due (soonest_us 0: nothing is parked).
]]

local lead = tonumber(ARGV[2])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now + lead),
  'WITHSCORES', 'LIMIT', 0, 1)
if #due > 0 then
  redis.call('ZREM', KEYS[1], due[1])
  return {due[1], due[2], string.format('%.0f', now)}
end
local soonest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if #soonest > 0 then
  return {'', soonest[2], string.format('%.0f', now)}
end
return {'', '0', string.format('%.0f', now)}
