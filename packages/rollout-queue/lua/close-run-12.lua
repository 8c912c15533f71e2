--[[
  Closes a run that did not complete (cancelled or failed): every group that
  is in flight, finished or served-but-unacked ends as cancelled, so the
  ledger balances. Closing an already closed or complete run is a no-op.

  KEYS[1..10]  as in admit-11.lua
  KEYS[11]     batch:<trainerStep> (the served, unacked batch, if any)
  KEYS[12]     fence
  ARGV[1]      events channel
  ARGV[2]      new state: "cancelled" | "failed"
  ARGV[3]      the caller's fencing token, or ''
  ARGV[4]      the trainer step KEYS[11] was named after

  Returns {1, groupsCancelled}, {0, 0} when the run was not open, or
  {2, trainerStep} without changing anything when the trainer step is no
  longer ARGV[4] (an ack moved it between the caller's read and this call:
  KEYS[11] would name the wrong batch and leave the served one open); the
  caller retries with the new step.

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
if redis.call('HGET', meta, 'state') ~= 'open' then return {0, 0} end
local step = redis.call('HGET', meta, 'trainerStep') or '0'
if step ~= ARGV[4] then return {2, tonumber(step)} end
local ids = {}
for _, key in ipairs({KEYS[3], KEYS[4]}) do
  local members = redis.call('ZRANGE', key, 0, -1)
  for i = 1, #members do ids[#ids + 1] = members[i] end
end
local served = redis.call('LRANGE', KEYS[11], 0, -1)
for i = 1, #served do ids[#ids + 1] = served[i] end
for i = 1, #ids do
  redis.call('HSET', KEYS[5], ids[i], 'cancelled')
end
-- unpack() is bounded by Lua's C stack, so delete in chunks.
for i = 1, #ids, 1000 do
  local chunk = {}
  for j = i, math.min(i + 999, #ids) do chunk[#chunk + 1] = ids[j] end
  redis.call('HDEL', KEYS[7], unpack(chunk))
  redis.call('HDEL', KEYS[6], unpack(chunk))
end
redis.call('DEL', KEYS[3], KEYS[4], KEYS[11], KEYS[2], KEYS[10])
redis.call('HINCRBY', KEYS[8], 'cancelled', #ids)
redis.call('HSET', meta, 'state', ARGV[2])
redis.call('PUBLISH', ARGV[1], 'closed')
return {1, #ids}
