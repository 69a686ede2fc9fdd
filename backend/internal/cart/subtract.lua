-- Takes ordered quantities out of a cart after a checkout: each line loses what was ordered and
-- disappears at zero, so an item the shopper added or raised while the checkout ran survives.
-- KEYS[1] the cart (keyspace.Cart)
-- ARGV pairs: product id, quantity ordered
-- Returns the number of lines removed.
local removed = 0
for i = 1, #ARGV, 2 do
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
