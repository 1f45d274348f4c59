--[[ slot_release.lua — give back an in-flight slot and wake one waiter.

KEYS[1]  lease set "td:rl:{acct}:slots" (see slot_acquire.lua)
KEYS[2]  wake list "td:rl:{acct}:slots:wake": waiters BLPOP it with a timeout, then retry
         slot_acquire.lua; a stale wake costs one extra attempt, never a wrong grant
ARGV[1]  token
ARGV[2]  limit (the wake list is kept at most this long)

Returns 1 if the token held a slot, 0 if its lease had already run out (or never existed).
]]

local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if removed == 1 then
  redis.call('RPUSH', KEYS[2], '1')
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
  redis.call('PEXPIRE', KEYS[2], 60000)
end
return removed
