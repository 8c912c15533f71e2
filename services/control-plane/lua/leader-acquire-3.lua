--[[
  Campaigns for the control-plane leader lock (local mode; Kubernetes uses a
  Lease). The lock is SET NX PX: whoever holds it leads until it expires or
  is released. Each new acquisition gets the next fencing token, INCR of an
  epoch that is never deleted, so tokens only grow across holders.

  KEYS[1]  holder  string: the holder id, with a PX expiry (the lease)
  KEYS[2]  epoch   counter: the last fencing token handed out
  KEYS[3]  info    hash: holder, token, httpUrl, grpcAddress, acquiredAtMs
                   (same expiry as the holder key; standbys name the leader from it)
  ARGV[1]  holder id (unique per process)
  ARGV[2]  lease in ms
  ARGV[3]  the holder's advertised HTTP URL
  ARGV[4]  the holder's advertised gRPC address
  ARGV[5]  now in ms (informational)

  Returns
    {1, token}    acquired: a new token
    {2, token}    the caller already holds it (lease extended, same token)
    {0, holder}   held by another holder
]]
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[3], ARGV[2])
  return {2, tonumber(redis.call('HGET', KEYS[3], 'token') or '0')}
end
if cur then return {0, cur} end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[3])
redis.call('HSET', KEYS[3], 'holder', ARGV[1], 'token', token, 'httpUrl', ARGV[3], 'grpcAddress', ARGV[4], 'acquiredAtMs', ARGV[5])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return {1, token}
