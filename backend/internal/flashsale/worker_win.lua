-- Records a won ticket after its unit was claimed in a shard (sale slot): result, seckill token,
-- reservation deadline, units held by the user, in-flight and queue bookkeeping.
-- KEYS[1] result, KEYS[2] token, KEYS[3] deadlines, KEYS[4] users, KEYS[5] sale stats,
-- KEYS[6] in-flight per user, KEYS[7] queue
-- ARGV[1] ticket, ARGV[2] user, ARGV[3] limit, ARGV[4] shard index, ARGV[5] token,
-- ARGV[6] expires (unix ms), ARGV[7] now (unix ms), ARGV[8] price, ARGV[9] product id,
-- ARGV[10] result TTL (ms)
-- Returns {"ok"}, {"missing"}, {"over_limit"} or {"done", status, shard}; on anything but "ok"
-- the caller releases its claim unless the result already names that same shard.
local r = redis.call('HMGET', KEYS[1], 'status', 'shard')
if not r[1] then
  return {'missing'}
end
if r[1] ~= 'queued' then
  return {'done', r[1], r[2] or ''}
end
-- Count the unit first and take it back when it passes the limit (one command fewer on a win;
-- the limit is at least 1, so a step back never leaves a field at zero that was absent).
if redis.call('HINCRBY', KEYS[4], ARGV[2], 1) > tonumber(ARGV[3]) then
  redis.call('HINCRBY', KEYS[4], ARGV[2], -1)
  return {'over_limit'}
end
redis.call('HSET', KEYS[2], 'user', ARGV[2], 'ticket', ARGV[1], 'shard', ARGV[4], 'state', 'reserved',
  'expires_at', ARGV[6], 'won_at', ARGV[7], 'price', ARGV[8], 'product_id', ARGV[9])
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[5])
redis.call('HSET', KEYS[1], 'status', 'won', 'token', ARGV[5], 'expires_at', ARGV[6], 'shard', ARGV[4],
  'decided_at', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[10])
redis.call('ZREM', KEYS[7], ARGV[1])
if redis.call('HINCRBY', KEYS[6], ARGV[2], -1) <= 0 then
  redis.call('HDEL', KEYS[6], ARGV[2])
end
redis.call('HINCRBY', KEYS[5], 'won', 1)
return {'ok'}
