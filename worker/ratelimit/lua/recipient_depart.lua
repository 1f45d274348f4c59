--[[ recipient_depart.lua — the per-recipient caps, checked again as the request leaves.

reserve.lua charges a recipient at its reserved slot, but a request can be written well after
its slot (a late wake, the departure gate's wait, a descheduled worker): judged only at the
slot, two late sends and two on time put more than the cap into one window at the provider.
So, as for the account windows (depart.lua), each recipient's send is checked again on the
departure clock: the reservation's stamp is replaced by a *pending* one at the grant, counted
as departing at every later decision's "now" until recipient_confirm.lua sets it to grant +
measured lateness (for at most `lease`, as depart.lua). A recipient whose window is full at
departure is refused with the time from which it fits: the caller defers it, never sends it.

Only departures count here. A reserved slot not yet departed (bare stamp) is either given back
or will be checked at its own departure, where it sees this one: of any cap + 1 departures in
a window, the last one granted saw the others, which is what makes the check exact.

KEYS[1..n]  one string per phone of the batch, in batch order (a phone may repeat), layout as
            in reserve.lua: "<blocked_until_ms> <stamp> ...", a stamp being "<slot_ms>"
            (reserved), "p<grant_ms>" (departing) or "d<written_ms>" (departed)

ARGV[1]  now in us, or "" for the server clock: `now`, set by _prelude.lua
ARGV[2]  the reserved slot in us (its stamp, ceil to ms, is this send's to replace); 0 = none
ARGV[3]  jitter_us, widening every window as reserve.lua does
ARGV[4]  lease_us: how long a pending stamp counts as departing now
ARGV[5]  number of recipient caps, then (count, window_us) pairs in ARGV[6..]

Returns {now_us, grant_ms, {refused index (0-based), due_us, ...}}.
]]

local now_ms = math.ceil(now / 1000)
local slot = tonumber(ARGV[2])
local slot_ms = slot > 0 and math.ceil(slot / 1000) or -1
local jitter = tonumber(ARGV[3])
local lease_ms = math.ceil(tonumber(ARGV[4]) / 1000)
local ncaps = tonumber(ARGV[5])
local caps, longest_ms = {}, 0
for c = 1, ncaps do
  local win_ms = math.ceil((tonumber(ARGV[5 + 2 * c]) + jitter) / 1000) + 1
  caps[c] = { tonumber(ARGV[4 + 2 * c]), win_ms }
  if win_ms > longest_ms then longest_ms = win_ms end
end

-- key -> {block, stamps = {{ms, kind}}}; parsed once per key, shared by repeats
local recs = {}
local function rec(key)
  local r = recs[key]
  if r then return r end
  r = { block = 0, stamps = {} }
  local v = redis.call('GET', key)
  if v then
    local first = true
    for kind, tok in string.gmatch(v, '(%a?)(%d+)') do
      if first then r.block = tonumber(tok); first = false
      else r.stamps[#r.stamps + 1] = { tonumber(tok), kind } end
    end
  end
  recs[key] = r
  return r
end

-- when a departure counts: a pending one is departing now, until its lease runs out
local function departed_at(s)
  if s[2] == 'p' then return math.min(now_ms, s[1] + lease_ms) end
  if s[2] == 'd' then return s[1] end
  return nil
end

local function due_of(r)
  local times = {}
  for _, s in ipairs(r.stamps) do times[#times + 1] = departed_at(s) end
  table.sort(times)
  local m, due = #times, 0
  if r.block > now_ms then due = r.block end
  for c = 1, ncaps do
    local count, win = caps[c][1], caps[c][2]
    local inwin = 0
    for j = 1, m do
      if times[j] > now_ms - win then inwin = inwin + 1 end
    end
    if inwin >= count then
      -- the (inwin - count + 1) oldest departures in the window must leave it first
      local d = times[m - count + 1] + win
      if d > due then due = d end
    end
  end
  return due
end

local refused = {}
for i = 1, #KEYS do
  local r = rec(KEYS[i])
  for j = #r.stamps, 1, -1 do -- this send's own reservation
    if r.stamps[j][2] == '' and r.stamps[j][1] == slot_ms then
      table.remove(r.stamps, j)
      break
    end
  end
  local due = due_of(r)
  if due > 0 then
    refused[#refused + 1] = i - 1
    refused[#refused + 1] = due * 1000
  else
    r.stamps[#r.stamps + 1] = { now_ms, 'p' } -- a repeat in this batch sees it
  end
end

for key, r in pairs(recs) do
  table.sort(r.stamps, function(a, b) return a[1] < b[1] end)
  local parts = { string.format('%.0f', r.block) }
  local last = r.block
  for _, s in ipairs(r.stamps) do
    if s[2] == 'p' or s[1] > now_ms - longest_ms then
      parts[#parts + 1] = s[2] .. string.format('%.0f', s[1])
      local keep_until = s[2] == 'p' and s[1] + lease_ms or s[1]
      if keep_until > last then last = keep_until end
    end
  end
  redis.call('SET', key, table.concat(parts, ' '), 'PX', math.max(1, last + longest_ms - now_ms))
end
return { now, now_ms, refused }
