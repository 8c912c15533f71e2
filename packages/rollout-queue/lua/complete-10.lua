--[[
  Stores a finished prompt group. A group that is already too old to be
  trained at its target step (target - minPolicyVersion > k) is dropped here,
  with reason stale, so that its slot is refilled at once rather than when
  the trainer reaches it.

  KEYS: as in admit-10.lua
  ARGV[1]  events channel
  ARGV[2]  groupId
  ARGV[3]  minPolicyVersion
  ARGV[4]  maxPolicyVersion
  ARGV[5]  tokens in the group (completion tokens, for wasted-token accounting)
  ARGV[6]  encoded PromptGroup (binary)

  Returns
    {1, target}   stored
    {2, target}   dropped as stale (ledger dropped_stale, tokens wasted)
    -3            unknown group (never admitted)
    -4            group is not in flight (already finished, cancelled, failed)
    -9            policy versions are not integers or min > max

  Every script returns -11 when the run has no queue (never created or deleted).
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return -11 end
local groupId = ARGV[2]
local st = redis.call('HGET', KEYS[5], groupId)
if not st then return -3 end
if st ~= 'inflight' then return -4 end

local minV = tonumber(ARGV[3])
local maxV = tonumber(ARGV[4])
local tokens = tonumber(ARGV[5])
if minV == nil or maxV == nil or tokens == nil or minV > maxV then return -9 end

local t = tonumber(redis.call('ZSCORE', KEYS[3], groupId))
redis.call('ZREM', KEYS[3], groupId)
local k = tonumber(redis.call('HGET', KEYS[1], 'k'))

if t - minV > k then
  redis.call('HSET', KEYS[5], groupId, 'dropped_stale')
  redis.call('HINCRBY', KEYS[2], t, -1)
  redis.call('HINCRBY', KEYS[8], 'dropped_stale', 1)
  redis.call('HINCRBY', KEYS[8], 'tokens_wasted', tokens)
  redis.call('PUBLISH', ARGV[1], 'slot')
  return {2, t}
end

redis.call('ZADD', KEYS[4], t, groupId)
redis.call('HSET', KEYS[5], groupId, 'finished')
redis.call('HSET', KEYS[6], groupId, ARGV[3] .. ':' .. ARGV[4] .. ':' .. ARGV[5])
redis.call('HSET', KEYS[7], groupId, ARGV[6])
redis.call('PUBLISH', ARGV[1], 'finished')
return {1, t}
