"""The Lua scripts of :class:`dwf.storage.redis.RedisStore`: every write is one script, so it is
atomic (Redis runs a script without interleaving anything) and checks the owner or the version
inside. Each script reads what it needs and validates before its first write.

Key layout under the prefix ``P`` (``dwf:`` by default)::

    P:meta                              hash   schema_version
    P:def:<hash>                        string definition text (kept forever, shared)
    P:exec:<id>                         hash   the execution's small fields; JSON values as text
    P:vars:<id>  P:state:<id>           hash   name -> JSON text
    P:entries:<id>                      list   one JSON array per audit entry; seq = index + 1
    P:all                               zset   id by created_at (every listing index too)
    P:by-workflow:<workflow_id>         zset
    P:by-status:<status>                zset
    P:by-status-workflow:<status>:<workflow_id>   zset
    P:by-parent:<parent_id>             zset
    P:due-lease                         zset   running executions by lease_expires_at
    P:due-wake  P:due-deadline          zset   pending/running/halted by wake_at / deadline
    P:expiring                          zset   terminal executions with a TTL, by expiry (ms)
    P:expiring-indexes                  hash   id -> JSON list of the listing indexes it is in

The type word comes before the id in every key, so no id can collide with another key. Every
script recomputes the index entries of the execution it changed (:lua:`reindex`), so the indexes
hold exactly the live executions: they shrink on delete and on every status change. With a TTL,
terminal executions expire with their keys; ``P:expiring`` remembers them so that listings prune
their index entries (:lua:`prune`) once Redis has dropped the keys.
"""

from __future__ import annotations

# Shared by every script. ARGV[1] is the key prefix, ARGV[2] the TTL in ms (0 = keep forever).
_LIBRARY = r"""
local P = ARGV[1]
local TTL_MS = tonumber(ARGV[2])
local TERMINAL = {completed = true, failed = true, cancelled = true}
local ACTIVE = {pending = true, running = true, halted = true}
local SUMMARY = {'workflow_id', 'status', 'parent_id', 'owner', 'lease_expires_at', 'deadline',
                 'wake_at', 'cancel_requested', 'version', 'created_at', 'updated_at'}

local function exec_key(id) return P .. 'exec:' .. id end
local function data_keys(id)
  return {P .. 'exec:' .. id, P .. 'vars:' .. id, P .. 'state:' .. id, P .. 'entries:' .. id}
end

-- The fields that decide which indexes hold an execution; nil when it does not exist.
local function read_indexed(id)
  local v = redis.call('HMGET', exec_key(id), 'workflow_id', 'status', 'parent_id',
                       'created_at', 'lease_expires_at', 'wake_at', 'deadline')
  if not v[1] then return nil end
  return {workflow_id = v[1], status = v[2], parent_id = v[3], created_at = v[4],
          lease_expires_at = v[5], wake_at = v[6], deadline = v[7]}
end

-- index key -> score for an execution with these fields.
local function index_scores(h)
  local c = h.created_at
  local out = {}
  out[P .. 'all'] = c
  out[P .. 'by-workflow:' .. h.workflow_id] = c
  out[P .. 'by-status:' .. h.status] = c
  out[P .. 'by-status-workflow:' .. h.status .. ':' .. h.workflow_id] = c
  if h.parent_id then out[P .. 'by-parent:' .. h.parent_id] = c end
  if h.status == 'running' and h.lease_expires_at then
    out[P .. 'due-lease'] = h.lease_expires_at
  end
  if ACTIVE[h.status] then
    if h.wake_at then out[P .. 'due-wake'] = h.wake_at end
    if h.deadline then out[P .. 'due-deadline'] = h.deadline end
  end
  return out
end

local function reindex(id, old, new)
  local before = old and index_scores(old) or {}
  local after = new and index_scores(new) or {}
  for key in pairs(before) do
    if after[key] == nil then redis.call('ZREM', key, id) end
  end
  for key, score in pairs(after) do
    if before[key] ~= score then redis.call('ZADD', key, score, id) end
  end
end

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function forget_expiring(id)
  redis.call('ZREM', P .. 'expiring', id)
  redis.call('HDEL', P .. 'expiring-indexes', id)
end

-- Retention after a write: a terminal execution expires TTL_MS from now with all its keys;
-- any other (pending, running, halted) never expires, so it loses a TTL it had.
local function retain(id, h)
  if h and TTL_MS > 0 and TERMINAL[h.status] then
    for _, key in ipairs(data_keys(id)) do redis.call('PEXPIRE', key, TTL_MS) end
    local keys = {}
    for key in pairs(index_scores(h)) do keys[#keys + 1] = key end
    redis.call('ZADD', P .. 'expiring', now_ms() + TTL_MS, id)
    redis.call('HSET', P .. 'expiring-indexes', id, cjson.encode(keys))
  elseif redis.call('ZSCORE', P .. 'expiring', id) then
    if h then
      for _, key in ipairs(data_keys(id)) do redis.call('PERSIST', key) end
    end
    forget_expiring(id)
  end
end

-- Remove the index entries of an execution whose keys Redis expired.
local function drop_expired(id)
  local card = redis.call('HGET', P .. 'expiring-indexes', id)
  if card then
    for _, key in ipairs(cjson.decode(card)) do redis.call('ZREM', key, id) end
  end
  forget_expiring(id)
end

-- Clean up to `max` expired executions (oldest expiry first).
local function prune(max)
  local now = now_ms()
  local ids = redis.call('ZRANGEBYSCORE', P .. 'expiring', '-inf', now, 'LIMIT', 0, max)
  for _, id in ipairs(ids) do
    if redis.call('EXISTS', exec_key(id)) == 0 then
      drop_expired(id)
    else
      local left = redis.call('PTTL', exec_key(id))
      if left > 0 then
        redis.call('ZADD', P .. 'expiring', now + left, id)
      else
        forget_expiring(id)
      end
    end
  end
end

-- Write `count` arguments from ARGV[first] on with `cmd key ...`, in chunks (Lua's stack is
-- limited). Chunks are even-sized, so field/value pairs stay together.
local function chunked(cmd, key, first, count)
  local last = first + count - 1
  for s = first, last, 1000 do
    redis.call(cmd, key, unpack(ARGV, s, math.min(s + 999, last)))
  end
end

local function summary(id)
  local s = redis.call('HMGET', exec_key(id), unpack(SUMMARY))
  if not s[1] then return nil end
  table.insert(s, 1, id)
  return s
end

local function record(id)
  return {redis.call('HGETALL', exec_key(id)), redis.call('HGETALL', P .. 'vars:' .. id),
          redis.call('HGETALL', P .. 'state:' .. id)}
end
"""

# ARGV: P, ttl, id, hash, definition, n, field/value..., n, name/value..., n, key/value...
# (each n counts the arguments after it). Returns 0 when the id exists, else 1.
CREATE = (
    _LIBRARY
    + r"""
local id = ARGV[3]
local key = exec_key(id)
if redis.call('EXISTS', key) == 1 then return 0 end
if redis.call('ZSCORE', P .. 'expiring', id) then drop_expired(id) end
local i = 6
local n_fields = tonumber(ARGV[i])
local n_vars = tonumber(ARGV[i + n_fields + 1])
local n_state = tonumber(ARGV[i + n_fields + n_vars + 2])
-- Whatever an expired execution with this id left behind goes first.
redis.call('DEL', P .. 'vars:' .. id, P .. 'state:' .. id, P .. 'entries:' .. id)
redis.call('SET', P .. 'def:' .. ARGV[4], ARGV[5], 'NX')
chunked('HSET', key, i + 1, n_fields)
i = i + n_fields + 1
if n_vars > 0 then chunked('HSET', P .. 'vars:' .. id, i + 1, n_vars) end
i = i + n_vars + 1
if n_state > 0 then chunked('HSET', P .. 'state:' .. id, i + 1, n_state) end
local new = read_indexed(id)
reindex(id, nil, new)
retain(id, new)
prune(100)
return 1
"""
)

# ARGV: P, ttl, id, owner, status, position, lease ('' = keep), now, then five lists, each a
# count of arguments followed by them: fields (field/value; '' deletes the field), set
# variables (name/value), deleted variables, set state (key/value), deleted state keys, and
# entries.
# Returns the new version, or {'lost', exists, owner, status}.
CHECKPOINT = (
    _LIBRARY
    + r"""
local id, owner, status = ARGV[3], ARGV[4], ARGV[5]
local key = exec_key(id)
local current = redis.call('HMGET', key, 'workflow_id', 'owner', 'status')
if not current[1] or current[2] ~= owner then
  return {'lost', current[1] and 1 or 0, current[2] or '', current[3] or ''}
end
local old = read_indexed(id)
local i = 9
local n_fields = tonumber(ARGV[i])
local fields_at = i + 1
i = i + n_fields + 1
local n_set_vars = tonumber(ARGV[i]); local set_vars_at = i + 1; i = i + n_set_vars + 1
local n_del_vars = tonumber(ARGV[i]); local del_vars_at = i + 1; i = i + n_del_vars + 1
local n_set_state = tonumber(ARGV[i]); local set_state_at = i + 1; i = i + n_set_state + 1
local n_del_state = tonumber(ARGV[i]); local del_state_at = i + 1; i = i + n_del_state + 1
local n_entries = tonumber(ARGV[i]); local entries_at = i + 1

-- Deletes first, then sets: a name in both ends up set.
if n_del_vars > 0 then chunked('HDEL', P .. 'vars:' .. id, del_vars_at, n_del_vars) end
if n_del_state > 0 then chunked('HDEL', P .. 'state:' .. id, del_state_at, n_del_state) end
if n_set_vars > 0 then chunked('HSET', P .. 'vars:' .. id, set_vars_at, n_set_vars) end
if n_set_state > 0 then chunked('HSET', P .. 'state:' .. id, set_state_at, n_set_state) end
if n_entries > 0 then chunked('RPUSH', P .. 'entries:' .. id, entries_at, n_entries) end

redis.call('HSET', key, 'status', status, 'position', ARGV[6], 'updated_at', ARGV[8])
if status == 'running' then
  if ARGV[7] ~= '' then redis.call('HSET', key, 'lease_expires_at', ARGV[7]) end
else
  redis.call('HDEL', key, 'owner', 'lease_expires_at')
end
for f = fields_at, fields_at + n_fields - 1, 2 do
  if ARGV[f + 1] == '' then
    redis.call('HDEL', key, ARGV[f])
  else
    redis.call('HSET', key, ARGV[f], ARGV[f + 1])
  end
end
local version = redis.call('HINCRBY', key, 'version', 1)
local new = read_indexed(id)
reindex(id, old, new)
retain(id, new)
return version
"""
)

# ARGV: P, ttl, id, owner, lease, expected_version, now. Returns the record or nil.
CLAIM = (
    _LIBRARY
    + r"""
local id = ARGV[3]
local key = exec_key(id)
local old = read_indexed(id)
if not old or redis.call('HGET', key, 'version') ~= ARGV[6] then return false end
redis.call('HSET', key, 'status', 'running', 'owner', ARGV[4], 'lease_expires_at', ARGV[5],
           'updated_at', ARGV[7])
redis.call('HINCRBY', key, 'version', 1)
local new = read_indexed(id)
reindex(id, old, new)
retain(id, new)
return record(id)
"""
)

# ARGV: P, ttl, id, owner, lease. Returns 1 if renewed.
RENEW = (
    _LIBRARY
    + r"""
local id = ARGV[3]
local key = exec_key(id)
local current = redis.call('HMGET', key, 'owner', 'status')
if current[1] ~= ARGV[4] or current[2] ~= 'running' then return 0 end
local old = read_indexed(id)
redis.call('HSET', key, 'lease_expires_at', ARGV[5])
reindex(id, old, read_indexed(id))
return 1
"""
)

# ARGV: P, ttl, id, expected_version, status, error ('' = none), entry ('' = none), now.
SET_STATUS = (
    _LIBRARY
    + r"""
local id = ARGV[3]
local key = exec_key(id)
local old = read_indexed(id)
if not old or redis.call('HGET', key, 'version') ~= ARGV[4] then return 0 end
redis.call('HSET', key, 'status', ARGV[5], 'updated_at', ARGV[8])
redis.call('HDEL', key, 'owner', 'lease_expires_at')
if ARGV[6] == '' then
  redis.call('HDEL', key, 'error')
else
  redis.call('HSET', key, 'error', ARGV[6])
end
if ARGV[7] ~= '' then redis.call('RPUSH', P .. 'entries:' .. id, ARGV[7]) end
redis.call('HINCRBY', key, 'version', 1)
local new = read_indexed(id)
reindex(id, old, new)
retain(id, new)
return 1
"""
)

# ARGV: P, ttl, id. Returns 1 if the execution exists.
REQUEST_CANCEL = (
    _LIBRARY
    + r"""
local key = exec_key(ARGV[3])
if redis.call('EXISTS', key) == 0 then return 0 end
redis.call('HSET', key, 'cancel_requested', '1')
return 1
"""
)

# ARGV: P, ttl, id. Returns 1 if the execution existed.
DELETE = (
    _LIBRARY
    + r"""
local id = ARGV[3]
local old = read_indexed(id)
if not old then
  if redis.call('ZSCORE', P .. 'expiring', id) then drop_expired(id) end
  return 0
end
reindex(id, old, nil)
redis.call('DEL', unpack(data_keys(id)))
forget_expiring(id)
return 1
"""
)

# ARGV: P, ttl, workflow_id, status, parent_id ('' = no filter; each prefixed with '=' when
# given, so that an empty id is a filter too), limit, offset. Returns summaries, newest first.
FIND = (
    _LIBRARY
    + r"""
local function given(arg) if arg == '' then return nil end return string.sub(arg, 2) end
local workflow, status, parent = given(ARGV[3]), given(ARGV[4]), given(ARGV[5])
local limit, offset = tonumber(ARGV[6]), tonumber(ARGV[7])
prune(1000)
-- The narrowest index that serves the filters; the rest are checked on each summary.
local base
if workflow and status then
  base = P .. 'by-status-workflow:' .. status .. ':' .. workflow
elseif parent then
  base = P .. 'by-parent:' .. parent
elseif workflow then
  base = P .. 'by-workflow:' .. workflow
elseif status then
  base = P .. 'by-status:' .. status
else
  base = P .. 'all'
end
local out, skipped, pos = {}, 0, 0
local batch = math.max(limit, 100)
while #out < limit do
  local ids = redis.call('ZREVRANGE', base, pos, pos + batch - 1)
  if #ids == 0 then break end
  pos = pos + #ids
  for _, id in ipairs(ids) do
    local s = summary(id)
    if s and (not workflow or s[2] == workflow) and (not status or s[3] == status)
        and (not parent or s[4] == parent) then
      if skipped < offset then
        skipped = skipped + 1
      elseif #out < limit then
        out[#out + 1] = s
      end
    end
  end
end
return out
"""
)

# ARGV: P, ttl, now, limit. Returns due summaries, oldest first.
FIND_DUE = (
    _LIBRARY
    + r"""
local now, limit = ARGV[3], tonumber(ARGV[4])
prune(1000)
local seen, rows = {}, {}
for _, name in ipairs({'due-lease', 'due-wake', 'due-deadline'}) do
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', P .. name, '-inf', now)) do
    if not seen[id] then
      seen[id] = true
      local s = summary(id)
      if s then rows[#rows + 1] = s end
    end
  end
end
-- Oldest first: created_at, then id bytewise (Lua's < on strings follows the server's locale).
local function bytes_less(a, b)
  for k = 1, math.min(#a, #b) do
    local x, y = string.byte(a, k), string.byte(b, k)
    if x ~= y then return x < y end
  end
  return #a < #b
end
table.sort(rows, function(a, b)
  local ca, cb = tonumber(a[11]), tonumber(b[11])
  if ca ~= cb then return ca < cb end
  return bytes_less(a[1], b[1])
end)
local out = {}
for k = 1, math.min(limit, #rows) do out[k] = rows[k] end
return out
"""
)
