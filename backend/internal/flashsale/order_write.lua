-- Writes a flash-sale order once (user slot): the first document stays, a retry gets it back.
-- KEYS[1] order document, KEYS[2] the user's order index
-- ARGV[1] order JSON, ARGV[2] score (created, unix ms), ARGV[3] order id
-- Returns the stored order JSON.
redis.call('SET', KEYS[1], ARGV[1], 'NX')
redis.call('ZADD', KEYS[2], 'NX', ARGV[2], ARGV[3])
return redis.call('GET', KEYS[1])
