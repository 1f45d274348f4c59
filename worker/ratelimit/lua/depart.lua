--[[ depart.lua — the last check before a request leaves: a sliding-window gate on actual
departures, so that no window at the provider sees more than the configured rate even when
workers are descheduled between their reserved slot and the send.

reserve.lua paces requests into evenly spaced slots (that is what keeps utilisation high);
this script refuses a request that would put more than the limit into any 1-s window of
arrivals. It rarely refuses: only when a delayed sender would bunch with the next.

Each entry stands for the latest moment its request can have reached the provider. A grant is
*pending*: the request has not been written yet, and a worker descheduled between this call
and its write departs later than the grant. confirm.lua then sets the entry to grant +
measured lateness + the margin by which an arrival may lag its write, and, once the answer's
head is in, moves it back to grant + measured time to that head (the provider had the request
by then). Until its first confirm a pending entry's time is unknown but not earlier than now,
so every decision counts it at `now` (inside any window that ends now) — for at most `lease`
after its grant, after which it counts at grant + lease (a sender dead before its write must
not hold a place for ever). Entry times are then never earlier than the arrivals for any later
decision, and a request is granted no earlier than its own arrival: of any limit + 1
arrivals, the last one granted saw the others inside its window.

KEYS[1]  departures sorted set
         confirmed member "<time_us>:<messages>:<token>"    score time_us
         pending member   "<grant_us>:<messages>:p:<token>"  score grant_us + lease_us
         (both start "<us>:<messages>:", so the message count parses alike)

KEYS[2]  the account's state hash (reserve.lua): on a grant, its `tat` (next request slot)
         moves up to the moment this window lets another request of the same size leave,
         if that is later. Without it, departures a process sent late keep their place in
         the window while the reservations stay on their even schedule: the slots promised
         are refused here, and the claims timed for them run too early (measured: 2 requests/s,
         every other request 200 ms behind its slot, for good).

ARGV[1]  now in us, or "" for the server clock: `now`, set by _prelude.lua
ARGV[2]  window_us: 1 s (1/rate below one request per second)
ARGV[3]  requests per window (0 = no limit)
ARGV[4]  messages per window (0 = no limit)
ARGV[5]  messages in this request
ARGV[6]  token: makes the member unique
ARGV[7]  lease_us: how long a pending entry counts as departing now
ARGV[8]  margin_us: a pending entry is confirmed at least this long after its grant
         (confirm.lua: the write, plus the margin by which the arrival may lag it)

Returns {wait_us, now_us, member}: wait_us 0 = granted, member is the pending entry to
confirm; wait_us > 0 = not recorded, ask again after this long (member "").
]]

local window = tonumber(ARGV[2])
local max_req = tonumber(ARGV[3])
local max_msg = tonumber(ARGV[4])
local count = tonumber(ARGV[5])
local lease = tonumber(ARGV[7])
local margin = tonumber(ARGV[8])
-- A pending entry becomes exact at its confirm, which places it at least `margin` after its
-- grant: when the entry to wait for is pending, ask again at grant + margin + window, or this
-- soon if that is past.
local PENDING_POLL_US = 2000

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%.0f', now - window))
local raw = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')

-- {effective time, messages, grant if pending else nil}, oldest first.
local entries = {}
for i = 1, #raw, 2 do
  local member, score = raw[i], tonumber(raw[i + 1])
  local grant, messages = string.match(member, '^(%d+):(%d+):p:')
  if grant then
    entries[#entries + 1] = {math.min(now, score), tonumber(messages), tonumber(grant)}
  else
    entries[#entries + 1] = {score, tonumber(string.match(member, '^%d+:(%d+):')), nil}
  end
end
table.sort(entries, function(a, b) return a[1] < b[1] end)
local n = #entries

local function wait_for(e)
  local wait = e[1] + window - now
  if e[3] then
    wait = math.max(e[3] + margin + window - now, PENDING_POLL_US)
  end
  return {math.max(1, wait), now, ''}
end

-- Which of the first m entries must leave the window before a request of `count` messages
-- may join them: by the request rule (the (max_req)-th newest) and by the message rule (drop
-- departures, oldest first, until it fits; one larger than the limit, which reserve.lua never
-- admits, would go alone). nil where that rule leaves room.
local function must_leave(m)
  local by_req, by_msg
  if max_req > 0 and m >= max_req then by_req = m - max_req + 1 end
  if max_msg > 0 then
    local total = count
    for i = 1, m do
      total = total + entries[i][2]
    end
    local i = 0
    while total > max_msg and i < m do
      i = i + 1
      total = total - entries[i][2]
    end
    if i > 0 then by_msg = i end
  end
  return by_req, by_msg
end

local by_req, by_msg = must_leave(n)
if by_req or by_msg then
  return wait_for(entries[by_req or by_msg])
end
local member = string.format('%.0f', now) .. ':' .. count .. ':p:' .. ARGV[6]
redis.call('ZADD', KEYS[1], now + lease, member)
redis.call('PEXPIRE', KEYS[1], math.ceil((window + lease) / 1000) + 1000)

-- The earliest the window lets the next request (assumed of this size) leave: the same
-- rules, with this departure in the window at `now` + margin, where its first confirm will
-- place it at the earliest (+1: an entry exactly one window old is still in it).
-- In order: an entry confirmed by another process (its own lateness and margin) may lie later.
entries[n + 1] = {now + margin, count, now}
table.sort(entries, function(a, b) return a[1] < b[1] end)
by_req, by_msg = must_leave(n + 1)
local next_at = 0
if by_req then next_at = entries[by_req][1] + window + 1 end
if by_msg then next_at = math.max(next_at, entries[by_msg][1] + window + 1) end
local tat = tonumber(redis.call('HGET', KEYS[2], 'tat'))
if tat and next_at > tat then
  -- Only a state reserve.lua wrote (it sets the hash's expiry); never one made here.
  redis.call('HSET', KEYS[2], 'tat', string.format('%.0f', next_at))
end
return {0, now, member}
