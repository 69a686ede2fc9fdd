-- Close a sale's pre-queue: from now on joiners go to the back (the join script checks presize).
-- KEYS[1] state (WaitRoom), KEYS[2] pre-queue (WaitRoomPre)
-- Returns the frozen pre-queue size.
local p = redis.call('HGET', KEYS[1], 'presize')
if p then return tonumber(p) end
local n = redis.call('HLEN', KEYS[2])
redis.call('HSET', KEYS[1], 'presize', n)
return n
