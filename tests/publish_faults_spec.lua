-- The registry-fault matrix (issue 9): a fault proxy (tests/support/faultproxy.py) between
-- relua.publish and a real registry, striking at each stage of a publish (as the upload's
-- connection opens, in the middle of the upload, after the registry stored it but before
-- its answer arrives, and on the read-back that confirms it) with each kind of fault
-- (connection reset, hang, a 5xx answer, a truncated answer), for the PyPI index, npm
-- (verdaccio) and the forge's release assets. Every row asserts what a release needs:
--   * the publish returns `published`, or fails with a structured error whose hint says
--     what to do (never `immutable`, `conflict` or `unverified` for our own upload);
--   * a plain re-run converges: `published` / `skipped_existing`;
--   * the registry holds exactly one copy, with our digest (counted on the server), and no
--     upload reached it after the copy landed;
--   * a hang is ended by relua's own timeouts (the proxy sees the client give up);
--   * what the publish said is true of the registry: `published` only when the copy is
--     there; a failure after the copy landed says it may have landed (`maybe_landed`,
--     `unconfirmed`), never that the upload failed; the re-run, with the ticket's record
--     of what it sent, says `published` for that copy, not `skipped_existing`.
-- Each fault strikes once (relua's retry then meets a healthy registry), and again on
-- every attempt (relua gives up, and what it says must match what landed). A last row
-- loses the upload's answer and the read-back together, on every attempt: the file is
-- there and relua cannot know it (`maybe_landed`).
-- `make test` runs a short form (see rows_for); `make faulttest` (RELUA_FAULTS_FULL=1) runs
-- the whole matrix.
local reg = require "support.registries"
local fs = require "relua.fs"
local json = require "relua.json"
local pypi = require "relua.registry.pypi"
local npm = require "relua.registry.npm"
local forge = require "relua.forge"

local FULL = os.getenv("RELUA_FAULTS_FULL") == "1"
local STAGES = { "connect", "upload", "answer", "readback" }
local KINDS = { "reset", "hang", "status", "truncate" }
local HANG = 20  -- the proxy's hang: far beyond relua's timeouts below, so relua must end it
local EVERY = 1000  -- a fault's count that outlasts every attempt of a publish

-- relua's timeouts, made short so the matrix stays fast (the defaults fit a real release).
local FAST = { connect_timeout = 2, stall_timeout = 1, confirm_timeout = 3, tries = 3, deadline = 30,
               verify_tries = 2, retry = { tries = 3, base = 0.05, max_delay = 0.2 } }

local function fast(...)
  local o = {}
  for _, t in ipairs({ FAST, ... }) do
    for k, v in pairs(t) do o[k] = v end
  end
  return o
end

-- The rows: the whole matrix (faults that strike once, then on every attempt, then the
-- lost answer with the read-back down: stage "lost"), or a short form: a Latin square where
-- each registry meets every stage and every kind once (shifted per registry, so each stage
-- meets three kinds), every stage once on every attempt with the quick kinds (a hang on
-- every attempt waits out each timeout: the whole matrix has those), and the lost answer.
local QUICK = { "reset", "status", "truncate" }
local function rows_for(shift)
  local rows = {}
  for _, every in ipairs({ false, true }) do
    for s, stage in ipairs(STAGES) do
      if FULL then
        for _, kind in ipairs(KINDS) do rows[#rows + 1] = { stage = stage, kind = kind, every = every } end
      elseif every then
        rows[#rows + 1] = { stage = stage, kind = QUICK[(s + shift - 1) % #QUICK + 1], every = true }
      else
        rows[#rows + 1] = { stage = stage, kind = KINDS[(s + shift - 1) % #KINDS + 1] }
      end
    end
  end
  for _, kind in ipairs(FULL and KINDS or { "reset" }) do rows[#rows + 1] = { stage = "lost", kind = kind, every = true } end
  for i, row in ipairs(rows) do row.n = i end
  return rows
end

-- The origin server, with a fault proxy in front of it (one request per connection).
local function behind_proxy(origin, dir)
  local ok, proxy = pcall(reg.faultproxy, origin.port, { close = true })
  if not ok then
    origin.stop()
    error(proxy, 0)
  end
  return { origin = origin, dir = dir, proxy = proxy }
end

local function stop(s)
  if s.proxy then s.proxy.stop() end
  if s.origin then s.origin.stop() end
end

-- A registry under test: start() -> servers and the proxy; arts(rows) builds one artifact
-- per row; publish(art, opts) through relua; upload / readback: the proxy's match for the
-- upload request and for the read-back after it; copies(art): {n = copies on the server,
-- digest = the first copy's}; dupes(): the upload answers that said "already there".
local REGISTRIES = {
  {
    name = "pypi", shift = 0,
    start = function(dir)
      local s = behind_proxy(reg.pypi(), dir)
      s.opts = { url = s.proxy.url .. "legacy/", index = s.proxy.url .. "simple/",
                 user = s.origin.user, password = s.origin.password }
      return s
    end,
    arts = function(s, rows)
      local pairs_ = {}
      for _, row in ipairs(rows) do
        pairs_[#pairs_ + 1] = "Fault.Py" .. row.n
        pairs_[#pairs_ + 1] = "1.0"
      end
      local paths = reg.build_dists(fs.join(s.dir, "dist"), pairs_)
      local out = {}
      for i, p in ipairs(paths) do
        out[i] = { path = p, id = "fault-py" .. i, digest = fs.digest(p, "sha256") }
      end
      return out
    end,
    publish = function(s, art, opts) return pypi.publish(art.path, fast(s.opts, opts)) end,
    upload = function() return { match = "POST /legacy/" } end,
    readback = function(_, art) return { match = "GET /simple/" .. art.id .. "/ ", skip = 1 } end,
    copies = function(s, art)
      local n, digest = 0, nil
      for _, f in ipairs(s.origin.files()) do
        if f == fs.basename(art.path) then
          n = n + 1
          digest = fs.digest(fs.join(s.origin.storage, "files", f), "sha256")
        end
      end
      return { n = n, digest = digest }
    end,
  },
  {
    name = "npm", shift = 1,
    start = function(dir)
      local s = behind_proxy(reg.verdaccio(), dir)
      s.opts = { registry = s.proxy.url, token = s.origin.token }
      return s
    end,
    arts = function(s, rows)
      local specs = {}
      for _, row in ipairs(rows) do
        specs[#specs + 1] = { manifest = { name = "fault-npm" .. row.n, version = "1.0.0" },
                              content = "module.exports = " .. row.n .. ";\n" }
      end
      local paths = reg.npm_pack(fs.join(s.dir, "tgz"), specs)
      local out = {}
      for i, p in ipairs(paths) do
        out[i] = { path = p, id = "fault-npm" .. i, digest = "sha512-" .. fs.digest(p, "sha512", "base64") }
      end
      return out
    end,
    publish = function(s, art, opts) return npm.publish(art.path, fast(s.opts, opts)) end,
    upload = function(_, art) return { match = "PUT /" .. art.id .. " " } end,
    readback = function(_, art) return { match = "GET /" .. art.id .. " ", skip = 1 } end,
    copies = function(s, art)
      -- what verdaccio stored: the tarballs in its storage folder, the versions it lists
      local folder = fs.join(s.origin.dir, "storage", art.id)
      local n = 0
      for _, f in ipairs(fs.list(folder) or {}) do
        if f:match("%.tgz$") then n = n + 1 end
      end
      local doc = json.decode(fs.read(fs.join(folder, "package.json")) or "null")
      local v = type(doc) == "table" and doc.versions and doc.versions["1.0.0"]
      return { n = n, digest = v and v.dist and v.dist.integrity }
    end,
  },
  {
    name = "forge", shift = 2,
    start = function(dir)
      local s = behind_proxy(reg.forge(), dir)
      local direct = forge.new({ api = s.origin.api, repo = "acme/faults", token = s.origin.token })
      s.release = direct:release("v1.0.0", { notes = false })  -- no notes: not generated from this tree
      s.direct = direct
      return s
    end,
    arts = function(s, rows)
      local out = {}
      assert(fs.mkdir(fs.join(s.dir, "assets")))
      for _, row in ipairs(rows) do
        local p = fs.join(s.dir, "assets", "fault-asset" .. row.n .. ".bin")
        assert(fs.write(p, string.rep("asset " .. row.n .. "\n", 2000)))
        out[#out + 1] = { path = p, id = fs.basename(p), digest = fs.digest(p, "sha256") }
      end
      return out
    end,
    publish = function(s, art, opts)
      -- a client through the proxy, as a recipe makes one (its timeouts from the same options)
      local o = fast(opts)
      local c = forge.new({ api = s.proxy.url:gsub("/$", ""), repo = "acme/faults", token = s.origin.token,
        tries = o.tries, timeout = o.deadline, connect_timeout = o.connect_timeout, stall_timeout = o.stall_timeout })
      local rel = c:find_release("v1.0.0")
      return c:assets(rel, { art.path }, o)[1]
    end,
    upload = function(s, art)
      return { match = "POST /repos/acme/faults/releases/" .. s.release.id .. "/assets?name=" .. art.id .. " " }
    end,
    -- the look, the list before the upload (incomplete uploads are removed), then the read-back
    readback = function(s) return { match = "GET /repos/acme/faults/releases/" .. s.release.id .. "/assets", skip = 2 } end,
    copies = function(s, art)
      local n, digest = 0, nil
      for _, a in ipairs(s.direct:list_assets(s.release)) do
        if a.name == art.id then
          n = n + 1
          digest = a.digest and a.digest:match("^sha256:(%x+)$")
        end
      end
      return { n = n, digest = digest }
    end,
  },
}

-- The codes a failed publish may end with when a fault struck: each says what to do.
local FAILURE_OK = { maybe_landed = true, unconfirmed = true, upload_failed = true, publish_failed = true,
                     unreachable = true, timeout = true, network = true }
-- The codes that say the file may be on the registry (true when it landed).
local MAY_HAVE_LANDED = { maybe_landed = true, unconfirmed = true }

local function describe_error(e)
  if type(e) ~= "table" then return tostring(e) end
  return string.format("%s: %s (hint: %s)", tostring(e.code), tostring(e.message), tostring(e.hint))
end

-- The proxy's stats once every hang it holds has ended (the proxy notes a client's close
-- when it next polls the connection): a bounded wait for that note, not a timing.
local function settled(proxy)
  local stats
  for _ = 1, 50 do
    stats = proxy.stats()
    local open = false
    for _, a in ipairs(stats.applied or {}) do
      if a.fault == "hang" and a.ended == nil then open = true end
    end
    if not open then return stats end
    require("relua.proc").sleep(0.1)
  end
  return stats
end

-- The answers the origin gave to uploads of art after the first that stored it: none may say
-- "already there" (a second copy was attempted).
local function second_uploads(stats, match, from)
  local stored, after = false, {}
  for i = from + 1, #(stats.answers or {}) do
    local a = stats.answers[i]
    if a[1]:sub(1, #match) == match then
      if stored then after[#after + 1] = a[1] .. " -> " .. a[2] end
      if a[2] >= 200 and a[2] < 300 then stored = true end
    end
  end
  return after
end

for _, R in ipairs(REGISTRIES) do
  describe("publish faults: " .. R.name, function()
    local s, dir, arts
    local rows = rows_for(R.shift)
    local log_level

    setup(function()
      log_level = require("relua.log").level("error")
      dir = assert(fs.tmpdir("relua-faults-"))
      s = R.start(dir)
      arts = R.arts(s, rows)
    end)

    teardown(function()
      require("relua.log").level(log_level)
      if s then stop(s) end
      if dir then fs.remove(dir, { recursive = true }) end
    end)

    for _, row in ipairs(rows) do
      local what = row.stage == "lost" and (row.kind .. " of the answer and of every read-back")
        or string.format("%s at %s%s", row.kind, row.stage, row.every and " on every attempt" or "")
      it(what .. ": one copy, a true outcome, a re-run converges", function()
        local art = arts[row.n]
        local count = row.every and EVERY or 1
        local faults = {}
        if row.stage ~= "readback" then
          local up = R.upload(s, art)
          faults[#faults + 1] = { fault = row.stage == "lost" and "reset" or row.kind, count = count,
            stage = row.stage == "lost" and "answer" or row.stage, match = up.match, seconds = HANG }
        end
        if row.stage == "readback" or row.stage == "lost" then
          local rb = R.readback(s, art)
          faults[#faults + 1] = { fault = row.kind, count = count, stage = "answer", match = rb.match, skip = rb.skip,
                                  seconds = HANG }
        end
        local st0 = s.proxy.stats()
        local before, answers0 = #(st0.applied or {}), #(st0.answers or {})
        s.proxy.fault(table.unpack(faults))
        local sent = {}
        local opts = { sent = sent, on_sent = function(label) sent[label] = true end }
        local ok, r = pcall(R.publish, s, art, opts)
        s.proxy.clear()
        local stats = settled(s.proxy)
        local applied = stats.applied[before + 1]
        assert.is_truthy(applied, "the fault struck")
        assert.are.equal(faults[1].fault, applied.fault)
        for i = before + 1, #stats.applied do
          if stats.applied[i].fault == "hang" then
            assert.are.equal("client", stats.applied[i].ended, "relua's timeout ended the hang")
          end
        end
        -- what the publish said is true of what is on the registry now
        local landed = R.copies(s, art).n
        assert.is_true(landed <= 1, "copies on the registry after the publish: " .. landed)
        if ok then
          assert.are.equal("published", r.status)
          assert.are.equal(1, landed, "reported published, but the registry does not hold it")
        else
          assert.is_table(r, describe_error(r))
          assert.is_true(FAILURE_OK[r.code] == true, "an unexpected failure: " .. describe_error(r))
          assert.is_truthy(r.hint, "a failure says what to do: " .. describe_error(r))
          if landed == 1 then
            assert.is_true(MAY_HAVE_LANDED[r.code] == true, "the file landed, yet: " .. describe_error(r))
          else
            assert.are_not.equal("unconfirmed", r.code, "said accepted, yet nothing landed")
          end
        end
        if row.stage == "lost" then
          -- the file is there; relua either read it back another way (published) or says
          -- it cannot know, and it never sent the file blind a second time (below)
          assert.are.equal(1, landed)
          if not ok then
            assert.are.equal("maybe_landed", r.code, describe_error(r))
            assert.matches("may have landed", r.message, 1, true)
          end
        end
        -- a plain re-run (the same recorded `sent`, as a resumed ticket has) converges, and
        -- the only copy there is the one this ticket sent: `published`
        local ok2, r2 = pcall(R.publish, s, art, opts)
        assert.is_true(ok2, "the re-run: " .. describe_error(r2))
        assert.are.equal("published", r2.status)
        local copies = R.copies(s, art)
        assert.are.equal(1, copies.n, "copies on the registry")
        assert.are.equal(art.digest, copies.digest)
        assert.are.same({}, second_uploads(s.proxy.stats(), R.upload(s, art).match, answers0))
      end)
    end
  end)
end
