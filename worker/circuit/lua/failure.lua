--[[ failure.lua — a request met a "provider unwell" failure.

KEYS[1]  the account's circuit hash ("td:circuit:{acct}", fields in teledispatch/circuits.py)
ARGV[1]  now, epoch ms
ARGV[2]  failures in a row that open the circuit
ARGV[3]  the first wait before a probe, ms
ARGV[4]  the longest wait between probes, ms
ARGV[5]  the reason shown to operators ("[503] ...")

Returns {opened, is_open, next_probe_ms, failures}: opened 1 only for the call that opened it
(the one log line), is_open 1 if the circuit is open after this failure.
]]

local now = tonumber(ARGV[1])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'closed' then
  local n = redis.call('HINCRBY', KEYS[1], 'failures', 1)
  if n < tonumber(ARGV[2]) then return {0, 0, 0, n} end
  local interval = tonumber(ARGV[3])
  redis.call('HSET', KEYS[1], 'state', 'open', 'reason', ARGV[5], 'opened_ms', now,
             'interval_ms', interval, 'next_probe_ms', now + interval)
  return {1, 1, now + interval, n}
end
if state == 'half_open' then
  -- The probe failed: wait twice as long before the next, up to the longest wait.
  local interval = tonumber(redis.call('HGET', KEYS[1], 'interval_ms') or ARGV[3])
  interval = math.min(interval * 2, tonumber(ARGV[4]))
  redis.call('HSET', KEYS[1], 'state', 'open', 'interval_ms', interval,
             'next_probe_ms', now + interval)
  redis.call('HDEL', KEYS[1], 'probe_until_ms')
  return {0, 1, now + interval, 0}
end
return {0, 1, tonumber(redis.call('HGET', KEYS[1], 'next_probe_ms') or now), 0}
