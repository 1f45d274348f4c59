--[[ _prelude.lua — prepended by scripts.py to every script whose ARGV[1] is the clock
(reserve, depart, defer, slot_acquire, throttle); not a script of its own.

ARGV[1]  now in us, or "" to use the server clock (redis TIME); tests pass a controlled clock

Defines `now`, in us. Every slot, window and lease is on this one clock, so workers on
different machines never compare their own clocks.
]]

local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
