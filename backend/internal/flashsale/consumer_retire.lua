-- Deletes a consumer from the attempt stream's group, but only while it holds no pending entry:
-- XGROUP DELCONSUMER drops the consumer's pending entries with it, and nobody would ever decide
-- them. A consumer that still holds entries stays until another consumer has claimed them
-- (XAUTOCLAIM after the claim idle time). One script, so no read can slip between check and delete.
-- KEYS[1] the attempt stream
-- ARGV[1] group, ARGV[2] consumer
-- Returns 1 when deleted (or already absent), 0 when kept because entries are pending.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p > 0 then
  return 0
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
