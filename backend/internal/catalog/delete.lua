-- Deletes a product document and its stock in one atomic step.
-- KEYS[1] the document (keyspace.Product), KEYS[2] the stock (keyspace.ProductStock), one slot.
-- Returns 1 when the document existed, 0 otherwise.
local n = redis.call('DEL', KEYS[1])
redis.call('DEL', KEYS[2])
return n
