-- The nginx + Lua peer of `make bench`: the OpenResty pattern of answering product reads and
-- sold-out checks at the load balancer. It reads the same keys as the edge (the key formats are
-- handed in by benchrun from shared/keyspace) and renders the same answers. With ttl > 0 the
-- answer is kept in a per-worker lua-resty-lrucache for ttl seconds: fast, but stale for up to
-- ttl after a change, which is what the edge's invalidation avoids.
local redis = require "nginx.redis" -- Debian's lua-nginx-redis (resty.redis under another name)
local lrucache = require "resty.lrucache"

local _M = {}

local conf
local cache

function _M.init(c)
  conf = c
  local err
  cache, err = lrucache.new(10000)
  if not cache then
    error("peer: lrucache: " .. (err or "unknown error"))
  end
end

local function store()
  local red = redis:new()
  red:set_timeouts(1000, 1000, 1000)
  local ok, err = red:connect(conf.host, conf.port)
  if not ok then
    return nil, err
  end
  return red
end

-- release returns the connection to the per-worker pool (the keepalive pool every OpenResty
-- deployment uses), so a request costs one store round trip and no connect.
local function release(red)
  red:set_keepalive(60000, 256)
end

local function fail(status, code, message)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.header["X-Request-ID"] = ngx.var.request_id
  ngx.print('{"error":{"code":"', code, '","message":"', message, '"}}')
end

local function stock_state(stock)
  if stock <= 0 then
    return "out_of_stock"
  elseif stock <= conf.low_stock then
    return "low"
  end
  return "in_stock"
end

-- read_product returns the public JSON of a product, false when it does not exist, or nil and
-- an error.
local function read_product(id)
  local red, err = store()
  if not red then
    return nil, err
  end
  -- Document and stock share a hash tag, so one MGET is cluster-safe: one round trip.
  local res
  res, err = red:mget(conf.product_prefix .. id .. conf.product_suffix,
    conf.stock_prefix .. id .. conf.stock_suffix)
  if not res then
    red:close()
    return nil, err
  end
  release(red)
  local doc = res[1]
  if doc == ngx.null then
    return false
  end
  local stock = tonumber(res[2] ~= ngx.null and res[2] or "0") or 0
  local sep = ","
  if #doc <= 2 then
    sep = ""
  end
  return string.sub(doc, 1, -2) .. sep .. '"stock_state":"' .. stock_state(stock) .. '"}'
end

function _M.product(id, ttl)
  local body
  if ttl > 0 then
    body = cache:get("p:" .. id)
  end
  if body == nil then
    local err
    body, err = read_product(id)
    if body == nil then
      return fail(503, "store_unavailable", "the store did not answer")
    end
    if ttl > 0 then
      cache:set("p:" .. id, body, ttl)
    end
  end
  if body == false then
    return fail(404, "not_found", "no such product")
  end
  ngx.header["Content-Type"] = "application/json"
  ngx.header["X-Request-ID"] = ngx.var.request_id
  ngx.print(body)
end

-- attempt answers a flash-sale attempt: 410 sold out when the sale's sold-out flag exists. The
-- peer has no order service behind it, so a sale that is not sold out gets 503.
function _M.attempt(id, ttl)
  ngx.req.discard_body()
  local sold
  if ttl > 0 then
    sold = cache:get("s:" .. id)
  end
  if sold == nil then
    local red, err = store()
    if not red then
      return fail(503, "store_unavailable", "the store did not answer")
    end
    local n
    n, err = red:exists(conf.soldout_prefix .. id .. conf.soldout_suffix)
    if not n then
      red:close()
      return fail(503, "store_unavailable", "the store did not answer")
    end
    release(red)
    sold = (n == 1)
    if ttl > 0 then
      cache:set("s:" .. id, sold, ttl)
    end
  end
  if not sold then
    return fail(503, "no_backend", "the bench peer only answers sold-out sales")
  end
  ngx.status = 410
  ngx.header["Content-Type"] = "application/json"
  ngx.header["X-Request-ID"] = ngx.var.request_id
  ngx.print('{"status":"sold_out"}')
end

-- The admission script: refuse when the sale's sold-out flag is set, else take one unit from the
-- stock key; the last unit sets the flag. Returns the units left, or -1 when sold out.
local admit_script = [[
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
local left = redis.call('DECR', KEYS[2])
if left < 0 then
  redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], '1')
  return -1
end
if left == 0 then
  redis.call('SET', KEYS[1], '1')
end
return left
]]
local admit_sha = (ngx.sha1_bin(admit_script):gsub('.', function(c)
  return string.format('%02x', string.byte(c))
end))

-- admit answers an attempt the way a seckill at the load balancer does: the script above
-- (EVALSHA, loaded on its first NOSCRIPT), then XADD of the admitted attempt for a worker,
-- 202 with a ticket (the request id) or 410 sold out.
function _M.admit(id)
  ngx.req.discard_body()
  local red, err = store()
  if not red then
    return fail(503, "store_unavailable", "the store did not answer")
  end
  local soldout = conf.soldout_prefix .. id .. conf.soldout_suffix
  local stock = conf.admit_stock_prefix .. id
  local left
  left, err = red:evalsha(admit_sha, 2, soldout, stock)
  if not left and err and string.find(err, "NOSCRIPT", 1, true) then
    left, err = red:eval(admit_script, 2, soldout, stock)
  end
  if not left then
    red:close()
    return fail(503, "store_unavailable", "the store did not answer")
  end
  if left < 0 then
    release(red)
    ngx.status = 410
    ngx.header["Content-Type"] = "application/json"
    ngx.header["X-Request-ID"] = ngx.var.request_id
    ngx.print('{"status":"sold_out"}')
    return
  end
  local ticket = ngx.var.request_id
  local ok
  ok, err = red:xadd(conf.admit_stream, "*", "sale", id, "ticket", ticket)
  if not ok then
    red:close()
    return fail(503, "store_unavailable", "the store did not answer")
  end
  release(red)
  ngx.status = 202
  ngx.header["Content-Type"] = "application/json"
  ngx.header["X-Request-ID"] = ticket
  ngx.print('{"ticket":"', ticket, '","status":"queued","poll_after_ms":1000}')
end

return _M
