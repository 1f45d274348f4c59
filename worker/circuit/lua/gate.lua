--[[ gate.lua — may this dispatch claim a batch of the account? Called before every claim.

KEYS[1]  the account's circuit hash ("td:circuit:{acct}", fields in teledispatch/circuits.py)
ARGV[1]  now, epoch ms
ARGV[2]  how long a probe's claim may stay unresolved before another may probe, ms
ARGV[3]  the shortest wait between probes, ms

Returns {kind, wait_ms}: kind 0 closed (claim as usual), 1 this caller sends the probe
(the circuit is now half-open), 2 wait wait_ms and ask again.
]]

local now = tonumber(ARGV[1])
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'closed' then return {0, 0} end
if state == 'open' then
  local due = tonumber(redis.call('HGET', KEYS[1], 'next_probe_ms') or '0')
  if now < due then return {2, due - now} end
else
  -- half-open: one probe is in flight; its outcome decides. A probe lost with its worker
  -- is given up once its lease is over.
  local lost = tonumber(redis.call('HGET', KEYS[1], 'probe_until_ms') or '0')
  if now < lost then return {2, math.min(lost - now, tonumber(ARGV[3]))} end
end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until_ms', now + tonumber(ARGV[2]))
return {1, 0}
