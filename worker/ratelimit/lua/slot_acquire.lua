--[[ slot_acquire.lua — take (or renew) one of the account's `concurrency` in-flight slots.

KEYS[1]  lease set, sorted set "td:rl:{acct}:slots": member = token, score = lease end (us)
ARGV[1]  now in us, or "" for the server clock: `now`, set by _prelude.lua
ARGV[2]  limit: most requests in flight at once for the account, across all workers
ARGV[3]  lease_us: the slot frees itself this long after (re)acquiring unless renewed
ARGV[4]  token: random id chosen by the caller; acquiring a token already held renews it

Returns {1, 0} when the slot is held, {0, wait_us} when all are taken: wait_us is when the
soonest lease runs out (a release may free one earlier; slot_release.lua signals that).
Expired leases (a crashed worker's) are dropped first, so a crash costs at most one lease.
]]

local limit, lease, token = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
if redis.call('ZSCORE', KEYS[1], token) or redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], string.format('%.0f', now + lease), token)
  local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  redis.call('PEXPIRE', KEYS[1], math.ceil((tonumber(newest[2]) - now) / 1000) + 1000)
  return { 1, 0 }
end
local soonest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return { 0, math.max(0, tonumber(soonest[2]) - now) }
