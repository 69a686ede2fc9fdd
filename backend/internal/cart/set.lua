-- Sets the quantity of one product in a cart, keeping the cart to a bounded number of lines, and
-- answers the cart as it is then, so an add needs no second read.
-- KEYS[1] the cart (keyspace.Cart): a hash product id -> quantity
-- ARGV[1] product id, ARGV[2] quantity (>= 1), ARGV[3] most distinct products a cart may hold,
-- ARGV[4] how long (ms) the cart is kept after this change
-- Returns the cart's field, value pairs (HGETALL) when set; an empty array when the product is
-- new and the cart was already full (then nothing changed). The usual change, of a line already
-- there, is three calls: HSET says whether the line is new, and only a new one is counted.
if redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) == 1 and redis.call('HLEN', KEYS[1]) > tonumber(ARGV[3]) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return {}
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return redis.call('HGETALL', KEYS[1])
