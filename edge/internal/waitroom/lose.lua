-- Record a waiting place lost for want of polls, unless the user was admitted meanwhile.
-- KEYS[1] passes (WaitRoomPass), KEYS[2] lost places (WaitRoomLost), KEYS[3] places (WaitRoomPlace)
-- ARGV[1] user, ARGV[2] now (unix ms), ARGV[3] the position the stale token carries (0: unknown)
-- Returns 1 when the place is (now or already) lost, else the pass expiry. A token for a place
-- its holder already gave up (a new one since, after a re-join) records nothing.
local cur = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
local pos = tonumber(ARGV[3])
if pos > 0 and cur ~= pos then return 1 end
local pass = redis.call('HGET', KEYS[1], ARGV[1])
if pass then return tonumber(pass) end
redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2])
return 1
