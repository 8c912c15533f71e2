--[[
  Compare-and-set of generator records: each record is written only if the
  stored value is still the one the caller read, so a weight sync that
  finishes late never overwrites a generator that was removed or
  re-registered (a new process, a new URL) in the meantime.

  KEYS[1]  generators hash: id -> JSON record
  ARGV     events channel, then triples: id, expected JSON, new JSON

  Returns the number of records written (and publishes "generators" when > 0).
]]
local written = 0
for i = 2, #ARGV, 3 do
  local id, expected, new = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('HGET', KEYS[1], id) == expected then
    redis.call('HSET', KEYS[1], id, new)
    written = written + 1
  end
end
if written > 0 then redis.call('PUBLISH', ARGV[1], 'generators') end
return written
