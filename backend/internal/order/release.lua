-- Gives back units reserved by a checkout that did not complete.
-- KEYS[1] the stock (keyspace.ProductStock), KEYS[2] the product document (keyspace.Product)
-- ARGV[1] the quantity to give back
-- A product deleted in the meantime gets no stock key back. Returns the new stock, or -2 when
-- the product no longer exists.
if redis.call('EXISTS', KEYS[2]) == 0 then
  return -2
end
return redis.call('INCRBY', KEYS[1], tonumber(ARGV[1]))
