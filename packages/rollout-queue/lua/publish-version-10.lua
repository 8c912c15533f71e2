--[[
  Publishes the policy version the generators now serve (after a weight sync
  completes). Versions only move forward; publishing an older one is a no-op.

  KEYS: as in admit-10.lua
  ARGV[1]  events channel
  ARGV[2]  version

  Returns the policy version in force afterwards.

  Every script returns -11 when the run has no queue (never created or deleted).
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return -11 end
local v = tonumber(ARGV[2])
local cur = tonumber(redis.call('HGET', KEYS[1], 'policyVersion'))
if v > cur then
  redis.call('HSET', KEYS[1], 'policyVersion', v)
  redis.call('PUBLISH', ARGV[1], 'version')
  return v
end
return cur
