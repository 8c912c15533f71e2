--[[
  Stores a finished prompt group. A group that is already too old to be
  trained at its target step (target - minPolicyVersion > k) is dropped here,
  with reason stale, so that its slot is refilled at once rather than when
  the trainer reaches it.

  The encoded group (~64 KiB) does not pass through this script: passing it
  as an argument copies it into Lua and back, which cost more Redis CPU than
  everything else on the rollout path. The caller stages it in the same
  MULTI, just before this script:

    MULTI
    HSETNX <payload> <groupId> <encoded group>
    EVAL <this script> ...
    EXEC

  HSETNX writes the field only when it is absent. A group in flight never
  has a payload (it is written when the group finishes and deleted when it
  is trained, dropped or cancelled), so for a group this script stores, the
  staged bytes are the payload; for a group that is finished or served
  already, HSETNX left the stored payload untouched; in every other case
  this script deletes what was staged. Seen from outside the transaction,
  the payload exists exactly when the group is finished or served.

  KEYS: as in admit-11.lua
  ARGV[1]  events channel
  ARGV[2]  groupId
  ARGV[3]  minPolicyVersion
  ARGV[4]  maxPolicyVersion
  ARGV[5]  tokens in the group (completion tokens, for wasted-token accounting)

  Returns
    {1, target}   stored
    {2, target}   dropped as stale (ledger dropped_stale, tokens wasted)
    -3            unknown group (never admitted)
    -4            group is not in flight (already finished, cancelled, failed)
    -9            policy versions are not integers or min > max

  Every script returns -11 when the run has no queue (never created or deleted).
]]
local groupId = ARGV[2]
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HDEL', KEYS[7], groupId)
  return -11
end
local st = redis.call('HGET', KEYS[5], groupId)
if not st then
  redis.call('HDEL', KEYS[7], groupId)
  return -3
end
if st ~= 'inflight' then
  if st ~= 'finished' and st ~= 'served' then redis.call('HDEL', KEYS[7], groupId) end
  return -4
end

local minV = tonumber(ARGV[3])
local maxV = tonumber(ARGV[4])
local tokens = tonumber(ARGV[5])
if minV == nil or maxV == nil or tokens == nil or minV > maxV then
  redis.call('HDEL', KEYS[7], groupId)
  return -9
end

local t = tonumber(redis.call('ZSCORE', KEYS[3], groupId))
redis.call('ZREM', KEYS[3], groupId)
local k = tonumber(redis.call('HGET', KEYS[1], 'k'))

if t - minV > k then
  redis.call('HDEL', KEYS[7], groupId)
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
redis.call('PUBLISH', ARGV[1], 'finished')
return {1, t}
