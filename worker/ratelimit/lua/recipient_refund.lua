--[[ recipient_refund.lua — a batch does not leave after all: take back its recipients' stamps.

reserve.lua stamps each admitted recipient at the reserved slot (bare "<slot_ms>") and
recipient_depart.lua replaces that with a pending "p<grant_ms>". A batch handed back before it
was written (a late wake, a lost lease, a full departure window, expired rows) must not leave
them behind: reserve.lua would count the message's own stamp when it is tried again and defer
it for a whole window, though nothing was sent to the number.

KEYS[1..n]  the recipients' keys of the messages not sent (a phone may repeat), layout as in
            reserve.lua: "<blocked_until_ms> <stamp> ..."
ARGV[1]     the stamp to take back once per occurrence of a key, exactly as stored:
            "<slot_ms>" (reserved) or "p<grant_ms>" (pending departure)

Returns how many stamps were taken back. The key keeps its TTL; a stamp already gone (the key
expired, or the stamp was confirmed as departed) is not touched.
]]

local stamp = ARGV[1]
local seen = {}
local taken = 0
for i = 1, #KEYS do
  local key = KEYS[i]
  local toks = seen[key]
  if not toks then
    toks = {}
    local v = redis.call('GET', key)
    if v then
      for tok in string.gmatch(v, '%S+') do toks[#toks + 1] = tok end
    end
    seen[key] = toks
  end
  for j = #toks, 2, -1 do -- one stamp per occurrence; toks[1] is the block, never a stamp
    if toks[j] == stamp then
      table.remove(toks, j)
      taken = taken + 1
      break
    end
  end
end
if taken > 0 then
  for key, toks in pairs(seen) do
    if #toks > 0 then
      local ttl = redis.call('PTTL', key)
      if ttl > 0 then
        redis.call('SET', key, table.concat(toks, ' '), 'PX', ttl)
      end
    end
  end
end
return taken
