--[[ abandon.lua — the probe's turn ended without an answer (nothing was due, or the batch was
given back before it left): open again, next probe one interval from now (not doubled).

KEYS[1]  the account's circuit hash ("td:circuit:{acct}", fields in teledispatch/circuits.py)
ARGV[1]  now, epoch ms
ARGV[2]  the first wait before a probe, ms (if the hash has lost its interval)

Returns 1 if the circuit was still half-open, else 0 (the probe was answered).
]]

if redis.call('HGET', KEYS[1], 'state') ~= 'half_open' then return 0 end
local interval = tonumber(redis.call('HGET', KEYS[1], 'interval_ms') or ARGV[2])
redis.call('HSET', KEYS[1], 'state', 'open', 'next_probe_ms', tonumber(ARGV[1]) + interval)
redis.call('HDEL', KEYS[1], 'probe_until_ms')
return 1
