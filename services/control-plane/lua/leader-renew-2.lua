--[[
  Compare-and-extend of the leader lock: the lease is extended only while
  the caller still holds it, so a holder whose lock expired (and perhaps
  went to another replica) can never extend someone else's.

  KEYS[1]  holder  string (see leader-acquire-3.lua)
  KEYS[2]  info    hash
  ARGV[1]  holder id
  ARGV[2]  lease in ms

  Returns 1 when extended, 0 when the caller does not hold the lock.
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[2])
return 1
