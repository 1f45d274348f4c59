--[[ success.lua — the provider answered a request: the run of failures is over.

KEYS[1]  the account's circuit hash ("td:circuit:{acct}", fields in teledispatch/circuits.py)

Returns 1 if this closed an open or half-open circuit (the one log line), else 0.
]]

local state = redis.call('HGET', KEYS[1], 'state')
redis.call('DEL', KEYS[1])
if state == 'open' or state == 'half_open' then return 1 end
return 0
