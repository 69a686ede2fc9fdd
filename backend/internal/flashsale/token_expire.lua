-- Expires one due reservation (sale slot): reserved -> expired exactly once (the same state field
-- checkout moves, so pay and expiry exclude each other); the user's held count goes down.
-- KEYS[1] token, KEYS[2] deadlines, KEYS[3] users, KEYS[4] sale stats
-- ARGV[1] token id, ARGV[2] now (unix ms)
-- Returns {"gone"} (nothing left to do), {"early", expires}, {"expired", ticket, shard} (the unit
-- must go back: the caller returns it, then calls token_finish) or
-- {"paid", user, ticket, shard, price, product_id, paid_at} (a checkout that stopped half way).
local t = redis.call('HMGET', KEYS[1], 'user', 'state', 'expires_at', 'ticket', 'shard', 'price', 'product_id', 'paid_at')
if not t[1] or t[2] == 'returned' then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return {'gone'}
end
if t[2] == 'paid' then
  return {'paid', t[1], t[4], t[5], t[6], t[7], t[8]}
end
if t[2] == 'reserved' then
  if tonumber(ARGV[2]) < tonumber(t[3]) then
    redis.call('ZADD', KEYS[2], t[3], ARGV[1])
    return {'early', t[3]}
  end
  redis.call('HSET', KEYS[1], 'state', 'expired', 'expired_at', ARGV[2])
  if redis.call('HINCRBY', KEYS[3], t[1], -1) <= 0 then
    redis.call('HDEL', KEYS[3], t[1])
  end
  redis.call('HINCRBY', KEYS[4], 'expired', 1)
end
return {'expired', t[4], t[5]}
