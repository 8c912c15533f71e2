--[[
  Records the batch for step s as trained and makes s + 1 the trainer's
  policy version. Acking a step that is already trained is a no-op
  (idempotent retry after a lost reply); no group is ever trained twice.

  KEYS[1..10]  as in admit-11.lua
  KEYS[11]     batch:<s>
  KEYS[12]     fence
  ARGV[1]      events channel
  ARGV[2]      step s
  ARGV[3]      "1" to publish s + 1 as the generators' policy version too
               (no weight-sync coordinator: generators follow the trainer)
  ARGV[4]      the caller's fencing token, or ''

  Returns
    {1, trainerStep, groupsTrained}   acked
    {2, trainerStep, 0}               already acked
    -1                                run is not open (cancelled / failed)
    -7                                step s is ahead of the trainer
    -8                                no batch was served for step s
    -10                               a group of the batch was not in state served

  Fencing: KEYS[12] is the run's fence (the highest leader token that took the
  run over) and ARGV[4] the caller's token; a token below the fence is refused
  with -12 before anything is read or written. An empty token skips the check
  (leader election off).

  Every script returns -11 when the run has no queue (never created or deleted).
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return -11 end
-- Fencing: a deposed control-plane leader (token below the run's fence) changes nothing.
if ARGV[4] ~= '' and tonumber(ARGV[4]) < tonumber(redis.call('GET', KEYS[12]) or '0') then return -12 end
local meta = KEYS[1]
local s = tonumber(ARGV[2])
local trainerStep = tonumber(redis.call('HGET', meta, 'trainerStep'))
if s < trainerStep then return {2, trainerStep, 0} end
if redis.call('HGET', meta, 'state') ~= 'open' then return -1 end
if s > trainerStep then return -7 end
local ids = redis.call('LRANGE', KEYS[11], 0, -1)
if #ids == 0 then return -8 end

local tokens = 0
for i = 1, #ids do
  if redis.call('HGET', KEYS[5], ids[i]) ~= 'served' then return -10 end
end
for i = 1, #ids do
  local id = ids[i]
  local m = redis.call('HGET', KEYS[6], id)
  local _, _, n = string.match(m, '^(-?%d+):(-?%d+):(%d+)$')
  tokens = tokens + tonumber(n)
  redis.call('HSET', KEYS[5], id, 'trained')
end
redis.call('HDEL', KEYS[7], unpack(ids))
redis.call('HDEL', KEYS[6], unpack(ids))
redis.call('HINCRBY', KEYS[8], 'trained', #ids)
redis.call('HINCRBY', KEYS[8], 'tokens_trained', tokens)
redis.call('DEL', KEYS[11])
redis.call('HDEL', KEYS[2], s)

local next = s + 1
redis.call('HSET', meta, 'trainerStep', next)
if ARGV[3] == '1' and tonumber(redis.call('HGET', meta, 'policyVersion')) < next then
  redis.call('HSET', meta, 'policyVersion', next)
end
if next >= tonumber(redis.call('HGET', meta, 'maxSteps')) then
  redis.call('HSET', meta, 'state', 'complete')
end
redis.call('PUBLISH', ARGV[1], 'ack')
return {1, next, #ids}
