-- Claims a sale id for a create (sale slot).
-- KEYS[1] sale hash, KEYS[2] claim (fingerprint string), KEYS[3] shard list
-- ARGV[1] fingerprint of the create request, ARGV[2..] shard key names (stored as list values)
-- Returns {"exists", fingerprint} when the sale is committed, {"conflict"} when another request
-- holds the id, {"claimed"} when this request may write the shards and commit.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists', redis.call('GET', KEYS[2]) or ''}
end
local held = redis.call('GET', KEYS[2])
if held and held ~= ARGV[1] then
  return {'conflict'}
end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3])
for i = 2, #ARGV do
  redis.call('RPUSH', KEYS[3], ARGV[i])
end
return {'claimed'}
