--[[ recipient_confirm.lua — a request was written: its recipients' pending stamps
(recipient_depart.lua) become departed at grant + measured lateness, never earlier than the
real write. A stamp already gone (the key expired) is not added back.

KEYS[1..n]  the recipients' keys of the departed messages (a phone may repeat)
ARGV[1]     grant_ms, as recipient_depart.lua returned it
ARGV[2]     lateness_us (>= 0)
ARGV[3]     the longest recipient window in ms (how long a stamp must be kept)

Returns the confirmed time in ms.
]]

local pending = 'p' .. ARGV[1]
local at = tonumber(ARGV[1]) + math.ceil(math.max(0, tonumber(ARGV[2])) / 1000)
local keep = tonumber(ARGV[3])
local seen = {}
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
  for j = 2, #toks do -- one stamp per occurrence of the phone
    if toks[j] == pending then
      toks[j] = 'd' .. string.format('%.0f', at)
      break
    end
  end
end
local function ms(tok) return tonumber(string.match(tok, '%d+')) end
for key, toks in pairs(seen) do
  if #toks > 0 then
    local head = table.remove(toks, 1)
    table.sort(toks, function(a, b) return ms(a) < ms(b) end)
    local last = ms(head)
    for _, tok in ipairs(toks) do
      if ms(tok) > last then last = ms(tok) end
    end
    local ttl = math.max(redis.call('PTTL', key), last + keep - at, 1)
    redis.call('SET', key, head .. (#toks > 0 and ' ' or '') .. table.concat(toks, ' '), 'PX', ttl)
  end
end
return at
