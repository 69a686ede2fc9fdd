-- Commits a claimed sale: the hash the edge reads, the sold-out flag for a sale without stock and
-- the initial ledger counter (sale slot). Shards were written before this call.
-- KEYS[1] sale hash, KEYS[2] claim, KEYS[3] sold-out flag, KEYS[4] sale stats
-- ARGV[1] fingerprint, ARGV[2] initial stock, ARGV[3..] field, value pairs of the sale hash
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 'exists'
end
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 'conflict'
end
for i = 3, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[4], 'initial', ARGV[2])
if tonumber(ARGV[2]) == 0 then
  redis.call('SET', KEYS[3], '1')
end
return 'ok'
