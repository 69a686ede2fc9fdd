-- Join a sale's waiting room, or find one's place again.
-- KEYS[1] state (WaitRoom), KEYS[2] pre-queue (WaitRoomPre), KEYS[3] places (WaitRoomPlace),
-- KEYS[4] lost places (WaitRoomLost), KEYS[5] tail (WaitRoomTail), KEYS[6] passes (WaitRoomPass)
-- ARGV[1] user, ARGV[2] now (unix ms, the edge's clock), ARGV[3] the sale's start (unix ms)
-- Returns {kind, position, pass expiry ms}: kind 'lost', 'pre' (in the pre-queue, position
-- unknown until the shuffle) or 'placed'. Before the start a joiner enters the pre-queue; the
-- first join at or after it (or the admitter, whichever comes first) freezes the pre-queue,
-- after which joiners get the next positions behind it in join order.
local user = ARGV[1]
if redis.call('HEXISTS', KEYS[4], user) == 1 then return {'lost', 0, 0} end
local pass = tonumber(redis.call('HGET', KEYS[6], user) or '0')
local p = redis.call('HGET', KEYS[3], user)
if p then return {'placed', tonumber(p), pass} end
local frozen = redis.call('HGET', KEYS[1], 'presize')
if not frozen then
  if tonumber(ARGV[2]) < tonumber(ARGV[3]) then
    redis.call('HSETNX', KEYS[2], user, ARGV[2])
    return {'pre', 0, 0}
  end
  frozen = redis.call('HLEN', KEYS[2])
  redis.call('HSET', KEYS[1], 'presize', frozen)
end
if redis.call('HEXISTS', KEYS[2], user) == 1 then return {'pre', 0, 0} end
local pos = tonumber(frozen) + redis.call('INCR', KEYS[5])
redis.call('HSET', KEYS[3], user, pos)
return {'placed', pos, 0}
