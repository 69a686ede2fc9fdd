-- Reserves units of one product for a checkout: takes them from its stock only when there are
-- enough, so stock never goes below zero (no oversell).
-- KEYS[1] the stock (keyspace.ProductStock), KEYS[2] the product document (keyspace.Product);
--         they share the product's hash tag, so a cluster keeps them in one slot
-- ARGV[1] the quantity wanted (>= 1)
-- Returns the stock left after the reservation, -1 when there is not enough, -2 when the product
-- no longer exists.
if redis.call('EXISTS', KEYS[2]) == 0 then
  return -2
end
local want = tonumber(ARGV[1])
local have = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if have < want then
  return -1
end
return redis.call('DECRBY', KEYS[1], want)
