--[[
  Ends an in-flight group without a result, freeing its slot:
    outcome "failed"     generation failed for good (reason recorded)
    outcome "cancelled"  aborted because it could no longer be fresh; when
                         ARGV[4] is "1" its prompt is queued to be admitted
                         again so that nothing accepted is lost

  KEYS: as in admit-11.lua
  ARGV[1]  events channel
  ARGV[2]  groupId
  ARGV[3]  outcome: "failed" | "cancelled"
  ARGV[4]  "1" to re-admit the prompt, else "0"

  Returns
    {1, target}  released
    -3           unknown group
    -4           group is not in flight

  Every script returns -11 when the run has no queue (never created or deleted).
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return -11 end
local groupId = ARGV[2]
local st = redis.call('HGET', KEYS[5], groupId)
if not st then return -3 end
if st ~= 'inflight' then return -4 end

local t = tonumber(redis.call('ZSCORE', KEYS[3], groupId))
redis.call('ZREM', KEYS[3], groupId)
redis.call('HINCRBY', KEYS[2], t, -1)
redis.call('HSET', KEYS[5], groupId, ARGV[3])
redis.call('HINCRBY', KEYS[8], ARGV[3], 1)
if ARGV[4] == '1' then
  redis.call('RPUSH', KEYS[10], redis.call('HGET', KEYS[9], groupId))
end
redis.call('PUBLISH', ARGV[1], 'slot')
return {1, t}
