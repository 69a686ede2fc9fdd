-- Give a user whose turn came an admission pass, once: a second call returns the first expiry.
-- KEYS[1] passes (WaitRoomPass), KEYS[2] lost places (WaitRoomLost), KEYS[3] places (WaitRoomPlace)
-- ARGV[1] user, ARGV[2] expiry of a new pass (unix ms), ARGV[3] the position the token carries
-- Returns the pass expiry, or -1 when the place was lost or is not the user's place any more (a
-- token kept from before a re-join: one user never holds two places).
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return -1 end
if tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0') ~= tonumber(ARGV[3]) then return -1 end
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
return tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
