-- Consumes a seckill token for checkout (sale slot). Pay and expiry both check and move the
-- token's state field inside one script in this slot, so exactly one of them wins.
-- KEYS[1] token, KEYS[2] sale stats
-- ARGV[1] user, ARGV[2] now (unix ms)
-- Returns {"missing"}, {"foreign"}, {"expired"} or {"paid", ticket, shard, price, product_id, paid_at}
-- ("paid" also for a token paid before whose order may not be written yet: the caller finishes it).
local t = redis.call('HMGET', KEYS[1], 'user', 'state', 'expires_at', 'ticket', 'shard', 'price', 'product_id', 'paid_at')
if not t[1] then
  return {'missing'}
end
if t[1] ~= ARGV[1] then
  return {'foreign'}
end
if t[2] == 'paid' then
  return {'paid', t[4], t[5], t[6], t[7], t[8]}
end
if t[2] ~= 'reserved' or tonumber(ARGV[2]) >= tonumber(t[3]) then
  return {'expired'}
end
redis.call('HSET', KEYS[1], 'state', 'paid', 'paid_at', ARGV[2])
redis.call('HINCRBY', KEYS[2], 'paid', 1)
return {'paid', t[4], t[5], t[6], t[7], ARGV[2]}
