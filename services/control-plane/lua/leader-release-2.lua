--[[
  Releases the leader lock on a clean stop, so a standby takes over at its
  next campaign instead of after the lease. Only the holder may release;
  the epoch stays (tokens keep growing).

  KEYS[1]  holder  string (see leader-acquire-3.lua)
  KEYS[2]  info    hash
  ARGV[1]  holder id

  Returns 1 when released, 0 when the caller did not hold the lock.
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
