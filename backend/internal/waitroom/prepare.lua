-- Fix a sale's shuffle seed once and publish its commitment.
-- KEYS[1] seed (WaitRoomSeed), KEYS[2] state (WaitRoom)
-- ARGV[1] a fresh seed (hex), ARGV[2] its commitment
-- Returns the commitment in force (a retry keeps the first seed).
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  redis.call('HSET', KEYS[2], 'commitment', ARGV[2])
end
return redis.call('HGET', KEYS[2], 'commitment')
