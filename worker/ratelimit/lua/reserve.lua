--[[ reserve.lua — decide one batch for one account, atomically, in one round trip.

Every key belongs to one account and carries its hash tag, e.g. "td:rl:{nx}:state", so the
whole call lives in one Redis Cluster slot. Recipient keys are passed in KEYS (never built
here), so the script is Cluster-correct.

KEYS[1]     state hash       fields: tat (next request slot, us), last (latest send, us),
                             gate (no send before, us; Retry-After), msum (messages in mlog),
                             mnext (us: the earliest a full batch fits the messages/s budget,
                             written when one did not; read by booking.next_slot_in),
                             f0/t0/tdec (throttle factor, when set, last decrease)
KEYS[2]     msg log list     "<send_us>:<count>", oldest first: one entry per admitted request
KEYS[3]     hour buckets     hash bucket-index -> messages sent in that bucket
KEYS[4]     day buckets      hash, same layout
KEYS[5..]   one string per phone of the batch, in batch order (a phone may repeat):
            "<blocked_until_ms> <sent_ms> <sent_ms> ...": a reserved slot's stamp is bare
            digits; a departure's is "p<grant_ms>" (pending) or "d<written_ms>", counted here
            as its digits (see recipient_depart.lua)

ARGV[1]  now in us, or "" for the server clock: `now`, set by _prelude.lua
ARGV[2]  max_wait_us: how far ahead of now a send slot may be reserved
ARGV[3]  jitter_us: every window is enforced as (window + jitter) to absorb latency spread
ARGV[4]  requests per second (0 = no limit)      ARGV[5]  messages per second (0 = no limit)
ARGV[6]  messages per hour (0 = no limit)        ARGV[7]  messages per day (0 = no limit)
ARGV[8]  buckets per hour/day window             ARGV[9]  throttle recovery per second
ARGV[10] number of recipient caps, then (count, window_us) pairs in ARGV[11..]

Returns { send_at_us (0 when nothing admitted), now_us, wait_us,
          {admitted batch indices, 0-based},
          {index, due_us, index, due_us, ...}   deferred: try again at due_us,
          {retry indices}                       budget beyond max_wait: ask again after wait_us }

Guarantee: send slots are handed out in non-decreasing time order, so checking only the windows
that END at the new slot suffices; every count is conservative (rounding always widens windows).
]]

local function fmt(x) return string.format('%.0f', x) end

local max_wait = tonumber(ARGV[2])
local jitter = tonumber(ARGV[3])
local req_rate = tonumber(ARGV[4])
local msg_rate = tonumber(ARGV[5])
local hour_limit = tonumber(ARGV[6])
local day_limit = tonumber(ARGV[7])
local nbuckets = tonumber(ARGV[8])
local recovery = tonumber(ARGV[9])
local ncaps = tonumber(ARGV[10])
local caps = {}
local longest_ms = 0
for c = 1, ncaps do
  -- +1 ms: send times are stored rounded up to whole ms, so widen the window by one ms.
  local win_ms = math.ceil((tonumber(ARGV[10 + 2 * c]) + jitter) / 1000) + 1
  caps[c] = { tonumber(ARGV[9 + 2 * c]), win_ms }
  if win_ms > longest_ms then longest_ms = win_ms end
end
local n = #KEYS - 4

local st = redis.call('HMGET', KEYS[1], 'tat', 'last', 'gate', 'msum', 'f0', 't0')
local tat = tonumber(st[1]) or 0
local last = tonumber(st[2]) or 0
local gate = tonumber(st[3]) or 0
local msum = tonumber(st[4]) or 0
local factor = 1
if st[5] then
  factor = tonumber(st[5]) + recovery * (now - tonumber(st[6])) / 1e6
  if factor > 1 then factor = 1 end
end

-- A rate of r/s as "at most cap in any window of period us": r >= 1 -> floor(r) per second
-- (a fraction cannot be honoured in every 1-s window); r < 1 -> one per 1/r seconds.
local function window_of(rate)
  if rate >= 1 then return math.floor(rate + 1e-9), 1e6 end
  return 1, 1e6 / rate
end

-- 1. The request slot: GCRA without burst, spacing (period + jitter) / cap.
local s = math.max(now, last, gate)
local spacing = 0
if req_rate > 0 then
  local cap, period = window_of(req_rate * factor)
  spacing = math.ceil((period + jitter) / cap)
  if tat > s then s = tat end
end

-- 2. Per-recipient caps and blocks, judged at slot s (counts can only fall as s grows).
local recs = {}
local function rec(key)
  local r = recs[key]
  if r then return r end
  r = { block = 0, times = {}, toks = {}, stored = 0, admitted = 0 }
  local v = redis.call('GET', key)
  if v then
    local first, stamps = true, {}
    for kind, tok in string.gmatch(v, '(%a?)(%d+)') do
      if first then r.block = tonumber(tok); first = false
      else stamps[#stamps + 1] = { tonumber(tok), kind .. tok } end
    end
    -- departure stamps (recipient_depart.lua) can sit between reserved slots: keep them
    -- ordered, and kept as written (their kind) when the key is written back
    table.sort(stamps, function(x, y) return x[1] < y[1] end)
    for j, st in ipairs(stamps) do r.times[j] = st[1]; r.toks[j] = st[2] end
  end
  r.stored = #r.times
  recs[key] = r
  return r
end

local s_ms = math.ceil(s / 1000)
local eligible = {}
local deferred = {}
for i = 1, n do
  local r = rec(KEYS[4 + i])
  local due = 0
  if r.block > s_ms then due = r.block end
  local times = r.times
  local m = #times
  for c = 1, ncaps do
    local count, win = caps[c][1], caps[c][2]
    local inwin, j = 0, m
    while j >= 1 and times[j] > s_ms - win do inwin = inwin + 1; j = j - 1 end
    if inwin >= count then
      -- the (inwin - count + 1) oldest in-window sends must leave before one more fits
      local d = times[m - count + 1] + win
      if d > due then due = d end
    end
  end
  if due > 0 then
    deferred[#deferred + 1] = i - 1
    deferred[#deferred + 1] = due * 1000
  else
    eligible[#eligible + 1] = i
    times[#times + 1] = s_ms -- tentative, so a repeated phone in this batch sees this send
  end
end

local admitted, retry = {}, {}
local function result(send_at, wait)
  return { send_at, now, math.max(0, math.ceil(wait)), admitted, deferred, retry }
end
local e = #eligible
if e == 0 then return result(0, 0) end
if s - now > max_wait then
  for k = 1, e do retry[k] = eligible[k] - 1 end
  return result(0, s - now - max_wait)
end

-- 3. Hour/day sliding windows, counted in buckets; a bucket counts while any part of it is
--    inside the window, so the count never falls short of the true one.
local function open_window(key, limit, window_us)
  local w = { key = key, limit = limit, weff = window_us + jitter,
              b = math.ceil(window_us / nbuckets), buckets = {}, sum = 0 }
  local raw = redis.call('HGETALL', key)
  local stale = {}
  for j = 1, #raw, 2 do
    local idx, cnt = tonumber(raw[j]), tonumber(raw[j + 1])
    if (idx + 1) * w.b > s - w.weff then
      w.buckets[#w.buckets + 1] = { idx, cnt }
      w.sum = w.sum + cnt
    else
      stale[#stale + 1] = raw[j]
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  table.sort(w.buckets, function(x, y) return x[1] < y[1] end)
  return w
end

local a = e
local windows = {}
if hour_limit > 0 then windows[#windows + 1] = open_window(KEYS[3], hour_limit, 3600e6) end
if day_limit > 0 then windows[#windows + 1] = open_window(KEYS[4], day_limit, 86400e6) end
for _, w in ipairs(windows) do
  a = math.min(a, math.max(0, w.limit - w.sum))
end
local a_window = a

-- Eligible recipients beyond the hour/day room wait until enough older sends leave the window;
-- 'taken' (admitted now or retried shortly) is counted in the bucket of slot t.
local function defer_overflow(taken, t)
  local rest = e - a_window
  if rest == 0 then return end
  local due = now
  for _, w in ipairs(windows) do
    if taken > 0 then
      local idx = math.floor(t / w.b)
      local lastb = w.buckets[#w.buckets]
      if lastb and lastb[1] == idx then lastb[2] = lastb[2] + taken
      else w.buckets[#w.buckets + 1] = { idx, taken } end
    end
    local need = math.min(rest, w.limit) - (w.limit - (w.sum + taken))
    local freed = 0
    for _, bk in ipairs(w.buckets) do
      if freed >= need then break end
      freed = freed + bk[2]
      due = math.max(due, (bk[1] + 1) * w.b + w.weff)
    end
  end
  for k = a_window + 1, e do
    deferred[#deferred + 1] = eligible[k] - 1
    deferred[#deferred + 1] = math.ceil(due)
  end
end
if a == 0 then
  defer_overflow(0, s)
  return result(0, 0)
end

-- 4. Messages per second: an exact log of (slot, count), because a batch lands all at once.
local mcap, mperiod = 0, 0
local function mentry(k)
  local v = redis.call('LINDEX', KEYS[2], k)
  if not v then return nil end
  local sep = string.find(v, ':')
  return tonumber(string.sub(v, 1, sep - 1)), tonumber(string.sub(v, sep + 1))
end
-- earliest slot >= from where k more messages fit (entries walked oldest first)
local function earliest(k, from)
  local need, freed, t, j = msum + k - mcap, 0, from, 0
  while freed < need do
    local ts, cnt = mentry(j)
    if not ts then break end
    freed = freed + cnt
    if ts + mperiod > t then t = ts + mperiod end
    j = j + 1
  end
  return t
end
-- messages still inside the window that ends at 'at'
local function msg_sum_at(at)
  local sum, j = msum, 0
  while true do
    local ts, cnt = mentry(j)
    if not ts or ts > at - mperiod then return sum end
    sum = sum - cnt
    j = j + 1
  end
end

local t = s
if msg_rate > 0 then
  local cap, period = window_of(msg_rate * factor)
  mcap, mperiod = cap, period + jitter
  local before = msum
  while true do -- forget what left the window ending at s: slots never go back before s
    local ts, cnt = mentry(0)
    if not ts then msum = 0; break end
    if ts > s - mperiod then break end
    msum = msum - cnt
    redis.call('LPOP', KEYS[2])
  end
  if msum ~= before then redis.call('HSET', KEYS[1], 'msum', fmt(msum)) end
  -- Fill the earliest slot that has any room: capacity left behind a slot is lost for good
  -- (slots only move forward), while a smaller request costs only a request slot.
  local want = math.min(a, mcap)
  t = earliest(1, s)
  if t - now <= max_wait then a = math.min(want, mcap - msg_sum_at(t)) else a = 0 end
  if a < 1 then
    for k = 1, a_window do retry[k] = eligible[k] - 1 end
    defer_overflow(a_window, s)
    -- Said to whoever asks whether a claim could book now (booking.next_slot_in): without
    -- it an account limited by messages/s alone claimed, found no budget, and handed the
    -- rows back, again and again, until the budget freed.
    redis.call('HSET', KEYS[1], 'mnext', fmt(t))
    if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], 3600000) end
    return result(0, t - now - max_wait)
  end
end

-- 5. Commit: the request slot, the message log, the windows and every admitted recipient.
local t_ms = math.ceil(t / 1000)
local fields = { 'last', fmt(t) }
if req_rate > 0 then
  tat = t + spacing
  fields[#fields + 1] = 'tat'; fields[#fields + 1] = fmt(tat)
end
if mcap > 0 then
  msum = msum + a
  fields[#fields + 1] = 'msum'; fields[#fields + 1] = fmt(msum)
  redis.call('RPUSH', KEYS[2], fmt(t) .. ':' .. fmt(a))
  redis.call('PEXPIRE', KEYS[2], math.ceil((t + mperiod - now) / 1000) + 1000)
end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('PEXPIRE', KEYS[1],
  math.max(3600000, math.ceil((math.max(gate, tat) - now) / 1000) + 60000))
for _, w in ipairs(windows) do
  redis.call('HINCRBY', w.key, fmt(math.floor(t / w.b)), a)
  redis.call('PEXPIRE', w.key, math.ceil((t + w.weff + w.b - now) / 1000) + 1000)
end

for k = 1, a do
  local i = eligible[k]
  admitted[k] = i - 1
  local r = recs[KEYS[4 + i]]
  r.admitted = r.admitted + 1
end
if ncaps > 0 then
  local now_ms = math.floor(now / 1000)
  for key, r in pairs(recs) do
    if r.admitted > 0 then
      local parts = { r.block > now_ms and fmt(r.block) or '0' }
      for j = 1, r.stored do
        local pending = string.sub(r.toks[j], 1, 1) == 'p'
        if pending or r.times[j] > now_ms - longest_ms then parts[#parts + 1] = r.toks[j] end
      end
      for _ = 1, r.admitted do parts[#parts + 1] = fmt(t_ms) end
      redis.call('SET', key, table.concat(parts, ' '), 'PX',
        math.max(t_ms + longest_ms, r.block) - now_ms)
    end
  end
end

-- 6. What is left: hour/day overflow is deferred; the part cut by messages-per-second (or the
--    horizon) is retried once a slot for it comes within reach.
defer_overflow(a_window, t)
local wait = 0
if a_window > a then
  for k = a + 1, a_window do retry[#retry + 1] = eligible[k] - 1 end
  wait = math.max(earliest(math.min(a_window - a, mcap), t), t + spacing) - now - max_wait
end
return result(t, wait)
