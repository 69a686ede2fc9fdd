-- Takes ordered quantities out of a cart after a checkout: each line loses what was ordered and
-- disappears at zero, so an item the shopper added or raised while the checkout ran survives.
-- KEYS[1] the cart (keyspace.Cart)
-- KEYS[2] optional: a once-marker for this order (keyspace.Idempotency, same user slot); when
--         given, a repeated call (a retried request) changes nothing
-- ARGV[1] the marker's lifetime in milliseconds (ignored without KEYS[2])
-- ARGV[2..] pairs: product id, quantity ordered
-- Returns the number of lines removed, or -1 when the marker says this was done already.
if KEYS[2] then
  if not redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[1]) then
    return -1
  end
end
local removed = 0
for i = 2, #ARGV, 2 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0') or 0
  local left = cur - tonumber(ARGV[i + 1])
  if left > 0 then
    redis.call('HSET', KEYS[1], ARGV[i], left)
  elseif cur > 0 then
    redis.call('HDEL', KEYS[1], ARGV[i])
    removed = removed + 1
  end
end
return removed
