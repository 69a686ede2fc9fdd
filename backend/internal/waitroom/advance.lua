-- Move a sale's serving counter on by one admission batch (at most one a second, whoever calls).
-- KEYS[1] state (WaitRoom), KEYS[2] sold-out flag (SoldOut), KEYS[3] used passes (WaitRoomUsed),
-- KEYS[4] batches (WaitRoomBatches), KEYS[5] tail (WaitRoomTail)
-- ARGV[1] now (unix ms), ARGV[2] admit per second, ARGV[3] make-up window (ms): an admitted
-- place whose holder made no attempt within it counts as unused and is made up.
-- Returns the serving counter, or -1 before the shuffle, -2 within the second, -3 while sold out.
-- The state hash is written only when the counter moves: edges read it through the client-side
-- cache, so each write costs one re-read per edge and polls cost nothing.
local st = KEYS[1]
if redis.call('HGET', st, 'shuffled') ~= '1' then return -1 end
local now, admit, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local last = tonumber(redis.call('HGET', st, 'last_ms') or '0')
if now - last < 1000 then return -2 end
if redis.call('EXISTS', KEYS[2]) == 1 then return -3 end
local n = math.floor((now - last) / 1000)
if n > 3 then n, last = 1, now - 1000 end -- after a pause (sold out, idle): no catch-up burst
local serving = tonumber(redis.call('HGET', st, 'serving') or '0')
local total = tonumber(redis.call('HGET', st, 'presize') or '0') + tonumber(redis.call('GET', KEYS[5]) or '0')
local made = tonumber(redis.call('HGET', st, 'made_up') or '0')
local add = n * admit
local old = redis.call('ZREVRANGEBYSCORE', KEYS[4], now - window, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #old > 0 then
  local bound = math.min(tonumber(old[1]), total)
  local unused = bound - redis.call('ZCOUNT', KEYS[3], 1, bound)
  if unused > made then
    add = add + unused - made
    made = unused
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. old[2])
end
local nxt = math.min(serving + add, total)
if nxt == serving then return serving end
redis.call('HSET', st, 'serving', nxt, 'last_ms', last + n * 1000, 'made_up', made)
redis.call('ZADD', KEYS[4], now, nxt)
return nxt
