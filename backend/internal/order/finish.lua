-- Ends a checkout's hold on its idempotency key: replaces the pending marker by the final record,
-- or deletes it so the key can be used again, only while the marker is still this checkout's.
-- KEYS[1] the idempotency record (keyspace.Idempotency)
-- ARGV[1] the pending marker this checkout set, ARGV[2] the final record or "" to delete,
-- ARGV[3] the final record's lifetime (ms)
-- Returns 1 when done, 0 when the marker is no longer this checkout's.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
