-- Record a waiting place lost for want of polls, unless the user was admitted meanwhile.
-- KEYS[1] passes (WaitRoomPass), KEYS[2] lost places (WaitRoomLost)
-- ARGV[1] user, ARGV[2] now (unix ms)
-- Returns 1 when the place is (now or already) lost, else the pass expiry.
local pass = redis.call('HGET', KEYS[1], ARGV[1])
if pass then return tonumber(pass) end
redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
return 1
