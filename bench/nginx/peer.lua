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
  cache, err = lrucache.new(c.cache_items)
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

-- public renders a stored product document and its stock value (ngx.null when absent) as the
-- edge's public JSON: the document with stock_state added.
local function public(doc, stock_value)
  local stock = tonumber(stock_value ~= ngx.null and stock_value or "0") or 0
  local sep = ","
  if #doc <= 2 then
    sep = ""
  end
  return string.sub(doc, 1, -2) .. sep .. '"stock_state":"' .. stock_state(stock) .. '"}'
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
  if res[1] == ngx.null then
    return false
  end
  return public(res[1], res[2])
end

-- page answers GET /api/v1/products?limit=1..100&cursor=N: the products numbered N+1 to N+limit
-- (the demo catalog's ids) rendered as product() renders them, from one MGET of their documents
-- and stocks (keys of different hash tags: a single store, not a cluster), next_cursor empty on
-- the last page; with ttl > 0 the page is kept in the lrucache for ttl seconds.
function _M.page(ttl)
  local args = ngx.req.get_uri_args()
  local limit = tonumber(args.limit or "20")
  if not limit or limit < 1 or limit > 100 or limit % 1 ~= 0 then
    return fail(400, "invalid_limit", "limit must be a whole number from 1 to 100")
  end
  local from = tonumber(args.cursor or "0")
  if not from or from < 0 or from > 99999999 or from % 1 ~= 0 then
    return fail(400, "invalid_cursor", "the cursor is not one this server gave")
  end
  local key = "pg:" .. from .. ":" .. limit
  local body
  if ttl > 0 then
    body = cache:get(key)
  end
  if body == nil then
    local red, err = store()
    if not red then
      return fail(503, "store_unavailable", "the store did not answer")
    end
    local keys = {}
    for i = 1, limit do
      local id = string.format("%08d", from + i)
      keys[#keys + 1] = conf.product_prefix .. id .. conf.product_suffix
      keys[#keys + 1] = conf.stock_prefix .. id .. conf.stock_suffix
    end
    local res
    res, err = red:mget(unpack(keys))
    if not res then
      red:close()
      return fail(503, "store_unavailable", "the store did not answer")
    end
    release(red)
    local items = {}
    for i = 1, #res - 1, 2 do
      if res[i] ~= ngx.null then
        items[#items + 1] = public(res[i], res[i + 1])
      end
    end
    local next_cursor = ""
    if #items == limit then
      next_cursor = tostring(from + limit)
    end
    body = '{"items":[' .. table.concat(items, ",") .. '],"next_cursor":"' .. next_cursor .. '"}'
    if ttl > 0 then
      cache:set(key, body, ttl)
    end
  end
  ngx.header["Content-Type"] = "application/json"
  ngx.header["X-Request-ID"] = ngx.var.request_id
  ngx.print(body)
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

-- The admission script: refuse when the sale's sold-out flag is set; with a users set (KEYS[3],
-- the rush's per-user limit of one unit) refuse a user already admitted; else take one unit from
-- the stock key and remember the user; the last unit sets the flag. Returns the units left, -1
-- when sold out, -2 when the user already holds a unit.
local admit_script = [[
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
if KEYS[3] and redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then
  return -2
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
if KEYS[3] then
  redis.call('SADD', KEYS[3], ARGV[1])
end
return left
]]
local function sha_hex(script)
  return (ngx.sha1_bin(script):gsub('.', function(c)
    return string.format('%02x', string.byte(c))
  end))
end
local admit_sha = sha_hex(admit_script)

-- script runs a script by its sha, loading it on its first NOSCRIPT.
local function script(red, sha, text, ...)
  local res, err = red:evalsha(sha, ...)
  if not res and err and string.find(err, "NOSCRIPT", 1, true) then
    res, err = red:eval(text, ...)
  end
  return res, err
end

-- bench_user is the shopper the load tool names in X-Bench-User (the peer has no sessions: the
-- balancer is taken to have checked one), or nil.
local function bench_user()
  local user = ngx.var.http_x_bench_user
  if not user or user == "" or #user > 64 or string.find(user, "[^%w_-]") then
    return nil
  end
  return user
end

-- admit answers an attempt the way a seckill at the load balancer does: the script above
-- (EVALSHA, loaded on its first NOSCRIPT), then XADD of the admitted attempt for a worker,
-- 202 with a ticket (the request id), 410 sold out, or 409 when the request names a user
-- (X-Bench-User) who was already admitted.
function _M.admit(id)
  ngx.req.discard_body()
  local red, err = store()
  if not red then
    return fail(503, "store_unavailable", "the store did not answer")
  end
  local soldout = conf.soldout_prefix .. id .. conf.soldout_suffix
  local stock = conf.admit_stock_prefix .. id
  local user = bench_user()
  local left
  if user then
    left, err = script(red, admit_sha, admit_script, 3, soldout, stock, conf.admit_users_prefix .. id, user)
  else
    left, err = script(red, admit_sha, admit_script, 2, soldout, stock)
  end
  if not left then
    red:close()
    return fail(503, "store_unavailable", "the store did not answer")
  end
  if left == -2 then
    release(red)
    return fail(409, "limit_reached", "you already hold as many units of this sale as one shopper may")
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

-- The cart add at the balancer, the cart service's set.lua in one script: set the line (a new
-- line only while the cart holds fewer than ARGV[3] products), keep the cart for ARGV[4] ms
-- (cart.TTL) and answer the cart's field, value pairs; an empty array when the cart was full.
local cart_script = [[
if redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) == 1 and redis.call('HLEN', KEYS[1]) > tonumber(ARGV[3]) then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return {}
end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return redis.call('HGETALL', KEYS[1])
]]
local cart_sha = sha_hex(cart_script)

-- priced returns {name as JSON, price} from a stored product document, nil when it lacks them.
-- The document is the catalog's compact JSON: the first "name" is the product's.
local function priced(doc)
  local price = tonumber(string.match(doc, '"price":(%-?%d+)'))
  local s = string.find(doc, '"name":"', 1, true)
  if not price or not s then
    return nil
  end
  local i = s + 7 -- the name's opening quote
  local j = i + 1
  while true do
    local c = string.byte(doc, j)
    if not c then
      return nil
    elseif c == 92 then -- a backslash escapes the next byte
      j = j + 2
    elseif c == 34 then
      break
    else
      j = j + 1
    end
  end
  return { string.sub(doc, i, j), price }
end

-- cart_put answers PUT /api/v1/cart/items/{id} with {"quantity":1..99} for the user named in
-- X-Bench-User: the product's name and price from the lrucache (or one GET of its document,
-- then kept for the TTL, as the cart service keeps the catalog's documents), the script above,
-- the other lines' prices from the lrucache (one MGET for those missing), and the cart as JSON
-- with its total, in product id order.
function _M.cart_put(id)
  if ngx.req.get_method() ~= "PUT" then
    return fail(405, "method_not_allowed", "PUT a quantity")
  end
  local user = bench_user()
  if not user then
    return fail(401, "unauthorized", "name the shopper in X-Bench-User")
  end
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  local q = body and tonumber(string.match(body, '^{"quantity":(%d%d?%d?)}$'))
  if not q or q < 1 or q > 99 then
    return fail(400, "invalid_quantity", "the quantity must be a whole number from 1 to 99")
  end
  local red, err = store()
  if not red then
    return fail(503, "store_unavailable", "the store did not answer")
  end
  local key = "c:" .. id
  local p = cache:get(key)
  if p == nil then
    local doc
    doc, err = red:get(conf.product_prefix .. id .. conf.product_suffix)
    if not doc then
      red:close()
      return fail(503, "store_unavailable", "the store did not answer")
    end
    if doc == ngx.null then
      release(red)
      return fail(404, "not_found", "no such product")
    end
    p = priced(doc)
    if not p then
      release(red)
      return fail(503, "bad_document", "the product has no name or price")
    end
    cache:set(key, p, conf.ttl)
  end
  local res
  res, err = script(red, cart_sha, cart_script, 1, conf.cart_prefix .. user .. "}", id, q, 50, 2592000000)
  if not res then
    red:close()
    return fail(503, "store_unavailable", "the store did not answer")
  end
  if #res == 0 then
    release(red)
    return fail(409, "cart_full", "the cart holds as many products as it may")
  end
  local ids, qty, prices, missing = {}, {}, {}, nil
  for i = 1, #res - 1, 2 do
    local lid = res[i]
    ids[#ids + 1] = lid
    qty[lid] = tonumber(res[i + 1]) or 0
    local lp = cache:get("c:" .. lid)
    if lp == nil then
      missing = missing or {}
      missing[#missing + 1] = lid
    else
      prices[lid] = lp
    end
  end
  if missing then
    local keys = {}
    for i, lid in ipairs(missing) do
      keys[i] = conf.product_prefix .. lid .. conf.product_suffix
    end
    local docs
    docs, err = red:mget(unpack(keys))
    if not docs then
      red:close()
      return fail(503, "store_unavailable", "the store did not answer")
    end
    for i, lid in ipairs(missing) do
      local d = docs[i]
      if d ~= ngx.null then
        local lp = priced(d)
        if lp then
          prices[lid] = lp
          cache:set("c:" .. lid, lp, conf.ttl)
        end
      end
    end
  end
  release(red)
  table.sort(ids)
  local out, total, first = { '{"items":[' }, 0, true
  for _, lid in ipairs(ids) do
    local lp = prices[lid]
    if lp and qty[lid] > 0 then -- a withdrawn product is neither shown nor charged
      if not first then
        out[#out + 1] = ","
      end
      first = false
      out[#out + 1] = '{"product_id":"' .. lid .. '","name":' .. lp[1] .. ',"quantity":' .. qty[lid] .. ',"price":' .. lp[2] .. '}'
      total = total + lp[2] * qty[lid]
    end
  end
  out[#out + 1] = '],"total":' .. total .. '}\n'
  ngx.header["Content-Type"] = "application/json"
  ngx.header["X-Request-ID"] = ngx.var.request_id
  ngx.print(out)
end

return _M
