-- Reveal the seed once the shuffled places are written, and admit the first batch.
-- KEYS[1] state (WaitRoom), KEYS[2] batches (WaitRoomBatches), KEYS[3] tail (WaitRoomTail)
-- ARGV[1] seed (hex), ARGV[2] now (unix ms), ARGV[3] admit per second
-- Returns the serving counter.
if redis.call('HGET', KEYS[1], 'shuffled') == '1' then
  return tonumber(redis.call('HGET', KEYS[1], 'serving'))
end
local total = tonumber(redis.call('HGET', KEYS[1], 'presize')) + tonumber(redis.call('GET', KEYS[3]) or '0')
local serving = math.min(tonumber(ARGV[3]), total)
redis.call('HSET', KEYS[1], 'seed', ARGV[1], 'shuffled', '1', 'serving', serving, 'last_ms', ARGV[2], 'made_up', 0)
redis.call('ZADD', KEYS[2], ARGV[2], serving)
return serving
