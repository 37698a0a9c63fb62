-- How the binary finds its lazily loaded host modules (host/main.c): files in ../lib/relua
-- beside the binary, the folder compiled in, or the copies a single-file build carries;
-- none of it may depend on /proc alone. And which libraries a require brings in.
local h = require "support.h"

-- The plain build's artefacts (the sanitizer build cannot start without /proc).
local BIN = h.root .. "/build/bin/relua"
local SINGLE = h.root .. "/build/single/relua"

-- Runs a shell command line with /proc hidden (a private mount namespace, tmpfs on /proc).
local function without_proc(cmdline, opts)
  return h.sh("unshare -rm sh -c " .. h.quote("mount -t tmpfs none /proc && " .. cmdline), opts)
end

local PROBE = [[print(type(require("relua.http").request), type(require("relua.git").open),
  require("relua.fs").hash("abc", "sha256"):sub(1, 8))]]
local PROBE_OUT = "function\tfunction\tba7816bf\n"

describe("lazy modules", function()
  after_each(h.cleanup)

  it("are found beside the binary, also without /proc", function()
    local r = h.relua({ "-e", PROBE }, { cwd = "/" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(PROBE_OUT, r.stdout)
    r = without_proc(h.quote(BIN) .. " -e " .. h.quote(PROBE), { cwd = "/" })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(PROBE_OUT, r.stdout)
    -- started through PATH, by its bare name
    r = without_proc("PATH=" .. h.quote(h.root .. "/build/bin") .. ":$PATH relua -e " .. h.quote(PROBE))
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(PROBE_OUT, r.stdout)
  end)

  it("are found in the folder compiled in when the binary is copied elsewhere", function()
    local d = h.tmpdir()
    assert.are.equal(0, h.sh("cp " .. h.quote(BIN) .. " " .. h.quote(d .. "/relua")).code)
    local r = h.sh(h.quote(d .. "/relua") .. " -e " .. h.quote(PROBE))
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(PROBE_OUT, r.stdout)
  end)

  it("travel inside a single-file build, loaded from a temporary file without /proc", function()
    local d = h.tmpdir()
    local tmp = d .. "/tmp"
    assert.are.equal(0, h.sh("mkdir " .. h.quote(tmp) .. " && cp " .. h.quote(SINGLE) .. " " .. h.quote(d .. "/relua")).code)
    local r = h.sh(h.quote(d .. "/relua") .. " -e " .. h.quote(PROBE))
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(PROBE_OUT, r.stdout)
    r = without_proc("TMPDIR=" .. h.quote(tmp) .. " " .. h.quote(d .. "/relua") .. " -e " .. h.quote(PROBE))
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(PROBE_OUT, r.stdout)
    assert.are.equal("", h.sh("ls -A " .. h.quote(tmp)).stdout)  -- the copies are removed once loaded
  end)

  it("say where they were looked for when missing", function()
    local prefix = h.tmpdir() .. "/usr"
    local r = h.sh("make -s install PREFIX=" .. h.quote(prefix), { cwd = h.root })
    assert.are.equal(0, r.code, r.stderr)
    os.remove(prefix .. "/lib/relua/http.so")
    r = h.sh(h.quote(prefix .. "/bin/relua") .. " -e 'require \"relua.http\"'")
    assert.are.equal(1, r.code)
    assert.matches("cannot load module 'relua.http': " .. (prefix .. "/bin/../lib/relua/http.so"):gsub("%p", "%%%0")
      .. ": not found; " .. (prefix .. "/lib/relua/http.so"):gsub("%p", "%%%0") .. ": not found; install relua", r.stderr)
  end)
end)

describe("requiring a module", function()
  after_each(h.cleanup)

  -- Which of the libraries are mapped after running `code` (a list of names).
  local function mapped(code, libs)
    local r = h.relua({ "-e", code .. [[
      local seen = {}
      for line in io.lines("/proc/self/maps") do
        for _, lib in ipairs({ ]] .. '"' .. table.concat(libs, '", "') .. '"' .. [[ }) do
          if line:find("/" .. lib, 1, true) then seen[lib] = true end
        end
      end
      local out = {}
      for lib in pairs(seen) do out[#out + 1] = lib end
      table.sort(out)
      io.write(table.concat(out, " "))
    ]] })
    assert.are.equal(0, r.code, r.stderr)
    return r.stdout
  end

  it("relua.http does not load libgit2", function()
    if h.links(h.bin, "libgit2") then  -- `make LAZY=`: linked from the start
      assert.are.equal("libcurl libgit2", mapped('require "relua.http"', { "libcurl", "libgit2" }))
      return
    end
    assert.are.equal("libcurl", mapped('require "relua.http"', { "libcurl", "libgit2" }))
    assert.are.equal("libcurl", mapped('local _ = require("relua.http").user_agent', { "libcurl", "libgit2" }))
  end)

  it("relua.fs loads libcrypto only when a digest is asked for", function()
    if h.links(h.bin, "libcrypto") then
      assert.are.equal("libcrypto", mapped('require "relua.fs"', { "libcrypto" }))
      return
    end
    assert.are.equal("", mapped('local fs = require "relua.fs"; fs.write(os.tmpname(), "x")', { "libcrypto" }))
    assert.are.equal("libcrypto", mapped('require("relua.fs").hash("x", "sha256")', { "libcrypto" }))
  end)

  it("libgit2 parses the CA bundle on the first git operation, not when relua.git is required", function()
    local function opens_bundle(code)
      -- (LeakSanitizer cannot run under ptrace: the sanitizer build checks no leaks here)
      local r = h.sh("strace -f -e trace=openat,open " .. h.quote(h.bin) .. " -e " .. h.quote(code),
        { cwd = h.root, env = { ASAN_OPTIONS = "detect_leaks=0" } })
      assert.are.equal(0, r.code, r.stderr)
      return r.stderr:find("ca-certificates", 1, true) ~= nil
    end
    assert.is_false(opens_bundle('assert(require("relua.git").compare_versions("1.0", "1.1") == -1)'))
    assert.is_true(opens_bundle('assert(require("relua.git").open("."))'))
  end)

  it("relua.version loads libgit2 and libcurl only for their versions", function()
    if h.links(h.bin, "libgit2") then
      assert.are.equal("libcurl libgit2", mapped('require "relua.version"', { "libcurl", "libgit2" }))
      return
    end
    assert.are.equal("", mapped('local v = require "relua.version"; assert(v.relua)', { "libcurl", "libgit2" }))
    assert.are.equal("libcurl libgit2", mapped('assert(require("relua.version").libgit2 ~= "?")', { "libcurl", "libgit2" }))
  end)
end)
