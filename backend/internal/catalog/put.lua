-- Writes a product document and, optionally, its stock in one atomic step.
-- KEYS[1] the document (keyspace.Product), KEYS[2] the stock (keyspace.ProductStock); they share
-- a hash tag, so a cluster keeps them in one slot.
-- ARGV[1] "create" (the document must not exist) or "update" (compare-and-set: the document must
--         still equal ARGV[2], the version the caller read and changed)
-- ARGV[2] the expected current document (update only)
-- ARGV[3] the new document
-- ARGV[4] the new stock, or "" to keep the stored one
-- Returns {"ok", stock after the write} or {"exists"}, {"not_found"}, {"conflict"}.
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == 'create' then
  if cur then return {'exists'} end
else
  if not cur then return {'not_found'} end
  if cur ~= ARGV[2] then return {'conflict'} end
end
redis.call('SET', KEYS[1], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[2], ARGV[4])
end
local stock = redis.call('GET', KEYS[2])
return {'ok', tonumber(stock) or 0}
