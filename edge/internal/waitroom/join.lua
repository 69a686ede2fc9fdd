-- Join a sale's waiting room, or find one's place again ('look': never creates a place).
-- KEYS[1] state (WaitRoom), KEYS[2] pre-queue (WaitRoomPre), KEYS[3] places (WaitRoomPlace),
-- KEYS[4] lost places (WaitRoomLost), KEYS[5] tail (WaitRoomTail), KEYS[6] passes (WaitRoomPass),
-- KEYS[7] last store-recorded sign of life (WaitRoomSeen)
-- ARGV[1] user, ARGV[2] now (unix ms, the edge's clock), ARGV[3] the sale's start (unix ms),
-- ARGV[4] hold (ms), ARGV[5] what the caller's queue token says: '1' its holder has not polled
-- for hold, '0' it has, '' no token (then the last sign of life recorded here decides),
-- ARGV[6] 'join' or 'look'
-- Returns {kind, position, pass expiry ms}: kind 'none' (look: not in the queue), 'lost', 'busy'
-- (retry: the pre-queue is being shuffled), 'pre' (in the pre-queue, position unknown until the
-- shuffle) or 'placed'.
--
-- A held place is kept while its holder polls (the queue token carries the last poll; without a
-- token, the last join or token-less look recorded here stands for it). A holder away longer
-- than hold loses the place; joining again then gives a new place at the back (before the start:
-- the pre-queue again, which anyone joining then gets), never the old one, so a re-join neither
-- resets a lost place nor holds two. Before the start a joiner enters the pre-queue; the first
-- join at or after it (or the admitter, whichever comes first) freezes the pre-queue, after which
-- joiners get the next positions behind it in join order.
local user, now = ARGV[1], tonumber(ARGV[2])
local pass = redis.call('HGET', KEYS[6], user)
local p = redis.call('HGET', KEYS[3], user)
if pass then return {'placed', tonumber(p or '0'), tonumber(pass)} end
local lost = redis.call('HEXISTS', KEYS[4], user) == 1
local inPre = redis.call('HEXISTS', KEYS[2], user) == 1
if not lost and (p or inPre) then
  local away = ARGV[5] == '1'
  if ARGV[5] == '' then
    away = now - tonumber(redis.call('HGET', KEYS[7], user) or '0') > tonumber(ARGV[4])
  end
  if not away then
    redis.call('HSET', KEYS[7], user, now)
    if p then return {'placed', tonumber(p), 0} end
    return {'pre', 0, 0}
  end
  redis.call('HSETNX', KEYS[4], user, now)
  lost = true
end
if ARGV[6] == 'look' then
  if lost then return {'lost', 0, 0} end
  return {'none', 0, 0}
end
local frozen = redis.call('HGET', KEYS[1], 'presize')
if not frozen and now >= tonumber(ARGV[3]) then
  frozen = redis.call('HLEN', KEYS[2])
  redis.call('HSET', KEYS[1], 'presize', frozen)
end
if not frozen then
  redis.call('HDEL', KEYS[4], user)
  redis.call('HSET', KEYS[7], user, now)
  redis.call('HSETNX', KEYS[2], user, ARGV[2])
  return {'pre', 0, 0}
end
-- A pre-queue member's shuffled place is written by the admitter: a lost one coming back waits
-- until it is, so the new place at the back is not overwritten.
if inPre and redis.call('HGET', KEYS[1], 'shuffled') ~= '1' then
  if lost then return {'busy', 0, 0} end
  return {'pre', 0, 0}
end
redis.call('HDEL', KEYS[4], user)
redis.call('HSET', KEYS[7], user, now)
local pos = tonumber(frozen) + redis.call('INCR', KEYS[5])
redis.call('HSET', KEYS[3], user, pos)
return {'placed', pos, 0}
