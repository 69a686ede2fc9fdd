-- Writes a placed order and the final answer of its checkout in one atomic step, but only while
-- the checkout still holds its idempotency key (its pending marker is unchanged).
-- KEYS[1] the idempotency record (keyspace.Idempotency), KEYS[2] the order (keyspace.Order),
-- KEYS[3] the user's order list (keyspace.UserOrders); all three carry the user's hash tag.
-- ARGV[1] the pending marker this checkout set, ARGV[2] the order JSON, ARGV[3] its score
-- (created at, unix ms), ARGV[4] the order id, ARGV[5] the final record, ARGV[6] its lifetime (ms)
-- Returns 1 when written, 0 when the marker is no longer this checkout's.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[6])
return 1
