--[[
  Publishes the policy version the generators now serve (after a weight sync
  completes). Versions only move forward; publishing an older one is a no-op.

  KEYS: as in admit-11.lua
  KEYS[11] fence
  ARGV[1]  events channel
  ARGV[2]  version
  ARGV[3]  the caller's fencing token, or ''

  Returns the policy version in force afterwards.

  Fencing: KEYS[11] is the run's fence (the highest leader token that took the
  run over) and ARGV[3] the caller's token; a token below the fence is refused
  with -12 before anything is read or written. An empty token skips the check
  (leader election off).

  Every script returns -11 when the run has no queue (never created or deleted).
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return -11 end
-- Fencing: a deposed control-plane leader (token below the run's fence) changes nothing.
if ARGV[3] ~= '' and tonumber(ARGV[3]) < tonumber(redis.call('GET', KEYS[11]) or '0') then return -12 end
local v = tonumber(ARGV[2])
local cur = tonumber(redis.call('HGET', KEYS[1], 'policyVersion'))
if v > cur then
  redis.call('HSET', KEYS[1], 'policyVersion', v)
  redis.call('PUBLISH', ARGV[1], 'version')
  return v
end
return cur
