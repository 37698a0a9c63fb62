-- relua.secret and the host's masking (host/secret.c): what a user could see, on every
-- stream and in every file relua writes.
local h = require "support.h"
local S = require "support.release"
local secret = require "relua.secret"

local PLANTED = "pl4nted-S3cret-value-7731"

local function b64(s)
  local p = assert(io.popen("printf %s " .. h.quote(s) .. " | base64 -w0"))
  local out = p:read("a")
  p:close()
  return out
end

-- Every file under dir, as {path = content}.
local function files_under(dir)
  local out = {}
  local p = assert(io.popen("find " .. h.quote(dir) .. " -type f"))
  for path in p:lines() do out[path] = h.slurp(path) end
  p:close()
  return out
end

-- Asserts that none of the texts holds the value or its base64 forms.
local function assert_hidden(texts, value)
  local forms = { value, b64(value), b64("user:" .. value):sub(8, -4) }
  for where, text in pairs(texts) do
    for _, f in ipairs(forms) do
      if text:find(f, 1, true) then
        error(string.format("the secret (or a form of it: %s) appears in %s:\n%s", f, where, text), 2)
      end
    end
  end
end

describe("relua.secret.mask", function()
  it("masks a declared value, its base64 forms and its percent-encoded form", function()
    local v = "d3clared/va+lue-0042"
    secret.declare(v)
    assert.equal("a *** b", secret.mask("a " .. v .. " b"))
    assert.equal("Authorization: Basic ***", secret.mask("Authorization: Basic " .. b64("me:" .. v)))
    assert.not_matches(b64(v):sub(1, 12), secret.mask("blob " .. b64(v)), 1, true)
    assert.equal("u=***", secret.mask("u=" .. v:gsub("/", "%%2F"):gsub("%+", "%%2B")))
  end)

  it("masks URL userinfo, credential query parameters, Bearer and Authorization values", function()
    assert.equal("https://user:***@example.org/x", secret.mask("https://user:pw@example.org/x"))
    assert.equal("https://***@github.com/o/r", secret.mask("https://ghp_0123456789abcdefghij@github.com/o/r"))
    assert.equal("ssh://git@example.org/r", secret.mask("ssh://git@example.org/r"))
    assert.equal("GET /f?a=1&access_token=***&b=2", secret.mask("GET /f?a=1&access_token=abc&b=2"))
    assert.equal("/s?X-Amz-Signature=*** ok", secret.mask("/s?X-Amz-Signature=0a1b2c ok"))
    assert.equal("401: bad credentials Bearer *** given",
      secret.mask("401: bad credentials Bearer npm_abcdefgh12345678 given"))
    assert.equal("authorization: token ***\nnext", secret.mask("authorization: token ghp_xyz\nnext"))
    assert.equal("?author=me", secret.mask("?author=me"))
  end)

  it("masks the values of environment variables named like credentials, not others", function()
    local r = h.relua({ "-e", [[
      local s = require "relua.secret"
      io.write(s.mask("a=" .. os.getenv("MY_API_TOKEN") .. " b=" .. os.getenv("DEPLOY_KEY")
        .. " c=" .. os.getenv("GIT_AUTHOR_NAME") .. " d=" .. os.getenv("SHORT_TOKEN")))
    ]] }, { env = { MY_API_TOKEN = "tok-0123456789", DEPLOY_KEY = "key-abcdefgh",
      GIT_AUTHOR_NAME = "Ada Lovelace", SHORT_TOKEN = "1" } })
    assert.equal(0, r.code, r.stderr)
    assert.equal("a=*** b=*** c=Ada Lovelace d=1", r.stdout)
  end)

  it("masks a value split across two pieces of a stream", function()
    local v = "str3am-secret-99"
    secret.declare(v)
    local m = secret.masker()
    local out = m:feed("start " .. v:sub(1, 7))
    out = out .. m:feed(v:sub(8) .. " end\npartial " .. v:sub(1, 3), "idle")
    out = out .. m:feed(v:sub(4) .. "!", "end")
    assert.equal("start *** end\npartial ***!", out)
  end)

  it("refuses a value equal to a secret and masks one that holds it (guard)", function()
    local v = "gu4rd-secret-value"
    secret.declare(v)
    local ok, err = pcall(secret.guard, { a = { v } }, "r.state.X")
    assert.is_false(ok)
    assert.equal("secret", err.code)
    assert.matches("r.state.X.a.1: the value is a secret", err.message, 1, true)
    assert.same({ url = "https://u:***@h" }, secret.guard({ url = "https://u:" .. v .. "@h" }, "s"))
  end)

  it("proposes a name for secret names the forges reserve", function()
    assert.is_nil(secret.reserved("MOLECULE_PYPI_TOKEN"))
    local why = secret.reserved("GITEA_PYPI_PUBLISHER_TOKEN", "molecule")
    assert.matches("starts with GITEA_", why, 1, true)
    assert.matches("MOLECULE_GITEA_PYPI_PUBLISHER_TOKEN", why, 1, true)
    assert.matches("RELEASE_TOKEN", secret.reserved("GITHUB_TOKEN"), 1, true)
  end)

  it("registers declared values with ::add-mask:: on GitHub Actions", function()
    local r = h.relua({ "-e", [[require("relua.secret").declare("gh-val%ue-123")]] },
      { env = { GITHUB_ACTIONS = "true" } })
    assert.equal(0, r.code, r.stderr)
    assert.equal("::add-mask::gh-val%25ue-123\n", r.stdout)
  end)
end)

describe("a planted secret", function()
  after_each(function() S.cleanup() end)

  it("appears in no stream and no file: command output (split across reads), r:log, log, print, state, error", function()
    local s = S.sandbox()
    s:write("recipe.lua", [[
      local secret = require "relua.secret"
      local log = require "relua.log"
      local v = secret.env("PLANTED")
      return { name = "leaky", phases = {
        { name = "one", run = function(r)
            r:sh("echo out $PLANTED; printf 'half %s' \"$(printf %s \"$PLANTED\" | cut -c1-9)\";" ..
                 " sleep 0.3; printf '%s tail\\n' \"$(printf %s \"$PLANTED\" | cut -c10-)\";" ..
                 " echo err $PLANTED >&2; printf user:%s \"$PLANTED\" | base64")
            r:log("the token is", v)
            log.info("token", { value = v })
            print("printed", v)
            r.state.URL = "https://ci:" .. v .. "@example.org/simple"
            r:step("fetch", function() return { auth = "Bearer " .. v } end)
          end },
        { name = "two", run = function(r)
            error("the registry said: bad token " .. v)
          end },
      } }
    ]])
    local res = s:relua({ "recipe.lua", "t1" }, { PLANTED = PLANTED })
    assert.equal(1, res.code)
    assert.matches("phase two failed", res.stderr, 1, true)
    assert.matches("out ***", res.stdout, 1, true)
    assert.matches("half *** tail", res.stdout, 1, true)
    local texts = files_under(s.rel)
    texts.stdout, texts.stderr = res.stdout, res.stderr
    assert_hidden(texts, PLANTED)
    assert.equal("https://ci:***@example.org/simple", s:state("t1").state.URL)
    local status = s:relua({ "status", "t1" })
    assert_hidden({ status = status.stdout .. status.stderr }, PLANTED)
  end)

  it("is refused as a state value, and the refusal does not show it", function()
    local s = S.sandbox()
    s:write("recipe.lua", [[
      local v = require("relua.secret").env("PLANTED")
      return { phases = { { name = "keep", run = function(r) r.state.TOKEN = v end } } }
    ]])
    local res = s:relua({ "recipe.lua", "t2" }, { PLANTED = PLANTED, RELUA_TRACE = "1" })
    assert.equal(1, res.code)
    assert.matches("r.state.TOKEN: the value is a secret", res.stderr, 1, true)
    local texts = files_under(s.rel)
    texts.stdout, texts.stderr = res.stdout, res.stderr
    assert_hidden(texts, PLANTED)
    assert.is_nil(s:state("t2").state.TOKEN)
  end)

  it("echoed back by a registry's 403 or a forge's 401 (Basic in base64, Bearer) appears in no stream and no file", function()
    local reg = require "support.registries"
    local pypi, forge = reg.pypi(), reg.forge()
    local ok, e = pcall(function()
      local fs = require "relua.fs"
      local wheel = reg.build_dists(fs.join(fs.dirname(pypi.storage), "dist-echo"), { "Echo.Pkg", "1.0" })[1]
      local s = S.sandbox()
      s:write("recipe.lua", [[
        return { name = "echo", phases = {
          { name = "publish", run = function(r)
              if os.getenv("WHEEL") then
                require("relua.registry.pypi").publish(os.getenv("WHEEL"), { url = os.getenv("INDEX"), user = "relua",
                  tries = 1, retry = false })
              else
                require("relua.forge").new({ repo = "acme/lib" }):release("v1.0", { notes = false })
              end
            end },
        } }
      ]])
      -- the index accepts the token, then answers 403 quoting the Basic header (user:token in base64)
      pypi.fail({ status = 403, prefix = "/legacy/", echo_auth = true })
      local res = s:relua({ "recipe.lua", "t-pypi" }, { WHEEL = wheel, INDEX = pypi.legacy, PYPI_TOKEN = pypi.password })
      assert.equal(1, res.code, res.stderr)
      assert.matches("HTTP 403 (injected failure 403: Authorization: Basic ***", res.stderr, 1, true)
      -- the forge answers 401 quoting the Bearer header
      forge.fail({ prefix = "/repos/acme/lib/releases", status = 401, echo_auth = true, count = 5 })
      local res2 = s:relua({ "recipe.lua", "t-forge" }, { GITHUB_API_URL = forge.api, GITHUB_TOKEN = forge.token, GH_TOKEN = false })
      assert.equal(1, res2.code, res2.stderr)
      assert.matches("Authorization: Bearer ***", res2.stderr, 1, true)
      local texts = files_under(s.rel)
      texts.stdout, texts.stderr = res.stdout .. res2.stdout, res.stderr .. res2.stderr
      for _, t in ipairs({ "t-pypi", "t-forge" }) do
        local st = s:relua({ "status", t })
        texts["status " .. t] = st.stdout .. st.stderr
        local lg = s:relua({ "log", t })
        texts["log " .. t] = lg.stdout .. lg.stderr
      end
      assert.matches("Authorization: Basic ***", h.slurp(s.rel .. "/t-pypi.json"), 1, true)
      assert_hidden(texts, pypi.password)
      assert_hidden(texts, forge.token)
      assert_hidden(texts, b64("relua:" .. pypi.password))
    end)
    pypi.stop()
    forge.stop()
    if not ok then error(e, 0) end
  end)

  it("is masked in an uncaught script error and its traceback", function()
    local res = h.relua({ "-e", [[local v = require("relua.secret").env("PLANTED"); error("boom " .. v)]] },
      { env = { PLANTED = PLANTED } })
    assert.equal(1, res.code)
    assert.matches("boom ***", res.stderr, 1, true)
    assert_hidden({ stderr = res.stderr }, PLANTED)
  end)
end)
