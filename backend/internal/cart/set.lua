-- Sets the quantity of one product in a cart, keeping the cart to a bounded number of lines.
-- KEYS[1] the cart (keyspace.Cart): a hash product id -> quantity
-- ARGV[1] product id, ARGV[2] quantity (>= 1), ARGV[3] most distinct products a cart may hold
-- Returns 1 when set, 0 when the product is new and the cart is already full.
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
