-- Give a user whose turn came an admission pass, once: a second call returns the first expiry.
-- KEYS[1] passes (WaitRoomPass), KEYS[2] lost places (WaitRoomLost)
-- ARGV[1] user, ARGV[2] expiry of a new pass (unix ms)
-- Returns the pass expiry, or -1 when the place was lost.
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return -1 end
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
