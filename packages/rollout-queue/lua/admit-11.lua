--[[
  Admits one prompt group for the lowest target step that still has room.

  A group may be admitted for target step t only while
    t - policyVersion <= k          (it can still be fresh when trained)
    t <  maxSteps
    slots[t] < batchGroups          (each step trains exactly batchGroups groups)
    inFlight + finished < capacity  (the bounded queue)
  Targets are searched upwards from the trainer's next step, so a slot freed
  by a failed, cancelled or stale group is refilled before later steps.

  KEYS[1]  meta      hash: k, batchGroups, capacity, maxSteps, policyVersion, trainerStep, state
  KEYS[2]  slots     hash: target step -> groups committed to it
  KEYS[3]  inflight  zset: groupId scored by target step
  KEYS[4]  finished  zset: groupId scored by target step
  KEYS[5]  gstate    hash: groupId -> state
  KEYS[6]  gmeta     hash: groupId -> "minV:maxV:tokens"
  KEYS[7]  payload   hash: groupId -> encoded PromptGroup
  KEYS[8]  ledger    hash: outcome counters
  KEYS[9]  gprompt   hash: groupId -> promptId
  KEYS[10] retry     list: promptIds to admit again
  KEYS[11] fence     string: the run's fencing token (see below)

  ARGV[1]  events channel
  ARGV[2]  the caller's fencing token, or '' (see below)

  The group id is the next value of meta.groupSeq. The prompt is the head of
  the retry list when there is one (a prompt whose group was cancelled), else
  the next draw meta.promptSeq; prompt ids are draw numbers, mapped onto the
  dataset (cyclically) by the caller.

  Returns
    {1, target, policyVersion, groupId, promptId}   admitted
    {0, reason}           not now; reason is "capacity", "version" or "slots"
    -1                    run is not open (cancelled / failed)
    -2                    run is complete (trainerStep >= maxSteps)

  Fencing: KEYS[11] is the run's fence (the highest leader token that took the
  run over) and ARGV[2] the caller's token; a token below the fence is refused
  with -12 before anything is read or written. An empty token skips the check
  (leader election off).

  Every script returns -11 when the run has no queue (never created or deleted).
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return -11 end
-- Fencing: a deposed control-plane leader (token below the run's fence) changes nothing.
if ARGV[2] ~= '' and tonumber(ARGV[2]) < tonumber(redis.call('GET', KEYS[11]) or '0') then return -12 end
local meta = KEYS[1]
local state = redis.call('HGET', meta, 'state')
if state ~= 'open' then
  if state == 'complete' then return -2 end
  return -1
end

local k = tonumber(redis.call('HGET', meta, 'k'))
local batchGroups = tonumber(redis.call('HGET', meta, 'batchGroups'))
local capacity = tonumber(redis.call('HGET', meta, 'capacity'))
local maxSteps = tonumber(redis.call('HGET', meta, 'maxSteps'))
local version = tonumber(redis.call('HGET', meta, 'policyVersion'))
local trainerStep = tonumber(redis.call('HGET', meta, 'trainerStep'))

if trainerStep >= maxSteps then return -2 end

if redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[4]) >= capacity then
  return {0, 'capacity'}
end

local last = version + k
if last > maxSteps - 1 then last = maxSteps - 1 end
if last < trainerStep then return {0, 'version'} end

for t = trainerStep, last do
  local used = tonumber(redis.call('HGET', KEYS[2], t) or '0')
  if used < batchGroups then
    local promptId = redis.call('LPOP', KEYS[10])
    if not promptId then
      promptId = tostring(redis.call('HINCRBY', meta, 'promptSeq', 1) - 1)
    end
    local groupId = tostring(redis.call('HINCRBY', meta, 'groupSeq', 1))
    redis.call('HSET', KEYS[2], t, used + 1)
    redis.call('ZADD', KEYS[3], t, groupId)
    redis.call('HSET', KEYS[5], groupId, 'inflight')
    redis.call('HSET', KEYS[9], groupId, promptId)
    redis.call('HINCRBY', KEYS[8], 'admitted', 1)
    return {1, t, version, groupId, promptId}
  end
end
if last < maxSteps - 1 then return {0, 'version'} end
return {0, 'slots'}
