--[[
  A control-plane leader takes a run over: the run's fence becomes the
  leader's fencing token, so that every leader-only transition of a leader
  with an older token (admit, serve-batch, ack-batch, publish-version,
  close-run) is refused from now on. Fences only move forward.

  KEYS[1]  meta   hash (as in admit-11.lua); the run must exist
  KEYS[2]  fence  string: the highest token that took the run over
  ARGV[1]  the new leader's fencing token (a positive integer)

  Returns
    token   the fence is now ARGV[1] (raised, or already there)
    -12     a newer leader (a higher token) holds the run: the caller is deposed

  Every script returns -11 when the run has no queue (never created or deleted).
]]
if redis.call('EXISTS', KEYS[1]) == 0 then return -11 end
local token = tonumber(ARGV[1])
local fence = tonumber(redis.call('GET', KEYS[2]) or '0')
if token < fence then return -12 end
if token > fence then redis.call('SET', KEYS[2], ARGV[1]) end
return token
