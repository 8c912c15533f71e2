--[[
  Serves the batch for step s: exactly batchGroups finished groups whose
  target is s, all with s - minPolicyVersion <= k. Older groups found on the
  way are dropped (reason stale) and their slots freed for new admissions.
  A batch served before and never acked is served again unchanged.

  KEYS[1..10]  as in admit-11.lua
  KEYS[11]     batch:<s>  list of the groupIds served for step s
  KEYS[12]     fence
  ARGV[1]      events channel
  ARGV[2]      step s
  ARGV[3]      the caller's fencing token, or ''

  The payloads are not in the reply: the caller reads them with HMGET
  (returning ~64 KiB groups through Lua copies each one twice, which cost
  more Redis CPU than the rest of the path). Once served, a group's payload
  stays until its step is acked or the run is closed; a caller that finds
  one missing asks again and gets the error that explains it.

  Returns
    {1, reserved(0|1), droppedStale, n, id_1..id_n, meta_1..meta_n}
                  ready; meta is "minV:maxV:tokens"
    {0, droppedStale, finishedFresh, batchGroups}                           not ready yet
    -1   run is not open
    -2   run is complete
    -6   step s was already trained
    -7   step s is ahead of the trainer (the previous batch is not acked)

  Fencing: KEYS[12] is the run's fence (the highest leader token that took the
  run over) and ARGV[3] the caller's token; a token below the fence is refused
  with -12 before anything is read or written. An empty token skips the check
  (leader election off).

  Every script returns -11 when the run has no queue (never created or deleted).
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return -11 end
-- Fencing: a deposed control-plane leader (token below the run's fence) changes nothing.
if ARGV[3] ~= '' and tonumber(ARGV[3]) < tonumber(redis.call('GET', KEYS[12]) or '0') then return -12 end
local meta = KEYS[1]
local s = tonumber(ARGV[2])
local trainerStep = tonumber(redis.call('HGET', meta, 'trainerStep'))
local state = redis.call('HGET', meta, 'state')
if s < trainerStep then return -6 end
if state == 'complete' then return -2 end
if state ~= 'open' then return -1 end
if s > trainerStep then return -7 end

local function reply(reserved, dropped, ids)
  local out = {1, reserved, dropped, #ids}
  for i = 1, #ids do out[#out + 1] = ids[i] end
  local metas = redis.call('HMGET', KEYS[6], unpack(ids))
  for i = 1, #metas do out[#out + 1] = metas[i] end
  return out
end

local served = redis.call('LRANGE', KEYS[11], 0, -1)
if #served > 0 then return reply(1, 0, served) end

local k = tonumber(redis.call('HGET', meta, 'k'))
local batchGroups = tonumber(redis.call('HGET', meta, 'batchGroups'))
local candidates = redis.call('ZRANGEBYSCORE', KEYS[4], s, s)
local fresh = {}
local dropped = 0
for i = 1, #candidates do
  local id = candidates[i]
  local m = redis.call('HGET', KEYS[6], id)
  local minV, _, tokens = string.match(m, '^(-?%d+):(-?%d+):(%d+)$')
  if s - tonumber(minV) > k then
    redis.call('ZREM', KEYS[4], id)
    redis.call('HSET', KEYS[5], id, 'dropped_stale')
    redis.call('HDEL', KEYS[7], id)
    redis.call('HDEL', KEYS[6], id)
    redis.call('HINCRBY', KEYS[2], s, -1)
    redis.call('HINCRBY', KEYS[8], 'dropped_stale', 1)
    redis.call('HINCRBY', KEYS[8], 'tokens_wasted', tonumber(tokens))
    dropped = dropped + 1
  elseif #fresh < batchGroups then
    fresh[#fresh + 1] = id
  end
end
if dropped > 0 then redis.call('PUBLISH', ARGV[1], 'slot') end
if #fresh < batchGroups then return {0, dropped, #fresh, batchGroups} end

for i = 1, #fresh do
  redis.call('ZREM', KEYS[4], fresh[i])
  redis.call('HSET', KEYS[5], fresh[i], 'served')
end
redis.call('RPUSH', KEYS[11], unpack(fresh))
redis.call('HSET', meta, 'servedStep', s)
return reply(0, dropped, fresh)
