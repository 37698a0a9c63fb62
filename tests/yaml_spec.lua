local yaml = require "relua.yaml"
local json = require "relua.json"
local h = require "support.h"

-- The playbook template from the release runbook (seed 002), indented as YAML.
local TEMPLATE = [[
- id: <kebab-case-id>
  symptom: |
    Free-form description of what the operator sees. Include
    the actual error message they'll grep for.
  detection:
    - command: <bash command to confirm this is the issue>
      expect: <what the output should be if this playbook applies>
  root_cause: |
    Why this happens. Be honest about which layer is at fault.
  fix:
    bootstrap_script: <file:fn that needs fixing>
    bootstrap_change: <description of the permanent fix>
    adhoc: |
      <commands to fix the running env now>
  verify:
    - <command to confirm the fix worked>
  services: [list]
  tags: [release, ...]
]]

-- The same template filled in for one of the runbook's known failure modes.
local VERIFY_RACE = [[
# recovery/playbooks/release-verify-race.yaml
- id: release-verify-race
  symptom: |
    Phase 4 fails with "✗ wikijs.healthy: unhealthy" and the
    container becomes healthy 30s later.
  detection:
    - command: just status wikijs
      expect: healthy
    - command: grep -c 'event=failed' .asd/workspace/releases/1234.log
      expect: "1"
  root_cause: >
    The probe runs once, right after force-recreate;
    slow services lose the race.
  fix:
    bootstrap_script: scripts/release/verify.sh:probe
    bootstrap_change: retry the health probe (#3918)
    adhoc: |
      just release-run 1234 --from=verify
  verify:
    - just status wikijs
  services: [wikijs]
  tags: [release, verify]
  retries: 3
  timeout: 2.5
  manual: false
]]

describe("relua.yaml", function()
  after_each(h.cleanup)

  describe("decode", function()
    it("reads the playbook template into the expected tables", function()
      local v, err = yaml.decode(TEMPLATE, "release-template.yaml")
      assert.is_nil(err)
      assert.are.same({
        {
          id = "<kebab-case-id>",
          symptom = "Free-form description of what the operator sees. Include\n"
            .. "the actual error message they'll grep for.\n",
          detection = {
            { command = "<bash command to confirm this is the issue>",
              expect = "<what the output should be if this playbook applies>" },
          },
          root_cause = "Why this happens. Be honest about which layer is at fault.\n",
          fix = {
            bootstrap_script = "<file:fn that needs fixing>",
            bootstrap_change = "<description of the permanent fix>",
            adhoc = "<commands to fix the running env now>\n",
          },
          verify = { "<command to confirm the fix worked>" },
          services = { "list" },
          tags = { "release", "..." },
        },
      }, v)
    end)

    it("reads a filled-in playbook with typed scalars and folded text", function()
      local v = assert(yaml.decode(VERIFY_RACE, "release-verify-race.yaml"))
      local e = v[1]
      assert.are.equal("release-verify-race", e.id)
      assert.are.equal('Phase 4 fails with "✗ wikijs.healthy: unhealthy" and the\n'
        .. "container becomes healthy 30s later.\n", e.symptom)
      assert.are.equal("The probe runs once, right after force-recreate; slow services lose the race.\n",
        e.root_cause)
      assert.are.same({ command = "grep -c 'event=failed' .asd/workspace/releases/1234.log", expect = "1" },
        e.detection[2])
      assert.are.equal("string", type(e.detection[2].expect))  -- quoted: stays a string
      assert.are.equal("just release-run 1234 --from=verify\n", e.fix.adhoc)
      assert.are.same({ "wikijs" }, e.services)
      assert.are.equal(3, e.retries)
      assert.are.equal("integer", math.type(e.retries))
      assert.are.equal(2.5, e.timeout)
      assert.are.equal(false, e.manual)
    end)

    it("marks sequences as arrays so they re-encode as JSON arrays", function()
      local v = assert(yaml.decode("list: []\nmap: {}\nitems: [a]\n"))
      assert.are.equal('{"items":["a"],"list":[],"map":{}}', json.encode(v))
    end)

    it("types plain scalars per the YAML 1.2 core schema", function()
      local v = assert(yaml.decode([[
nulls: [~, null, Null, NULL]
bools: [true, True, TRUE, false, False, FALSE]
ints: [0, 42, -7, +3, 007, 0o17, 0x1F]
floats: [1.5, -0.5, .5, 1., 1e3, 2.5E-1, .inf, -.Inf]
strings: [yes, no, on, 1_000, 0b101, 1.2.3, v1, 12:30, "true", '42', 0x, text with spaces]
]]))
      assert.are.same({ yaml.null, yaml.null, yaml.null, yaml.null }, v.nulls)
      assert.are.same({ true, true, true, false, false, false }, v.bools)
      assert.are.same({ 0, 42, -7, 3, 7, 15, 31 }, v.ints)
      for _, n in ipairs(v.ints) do assert.are.equal("integer", math.type(n)) end
      assert.are.same({ 1.5, -0.5, 0.5, 1.0, 1000.0, 0.25, math.huge, -math.huge }, v.floats)
      for _, n in ipairs(v.floats) do assert.are.equal("float", math.type(n)) end
      assert.are.same({ "yes", "no", "on", "1_000", "0b101", "1.2.3", "v1", "12:30", "true", "42", "0x",
        "text with spaces" }, v.strings)
      local nan = assert(yaml.decode("x: .nan\n")).x
      assert.is_true(nan ~= nan)
      -- An integer too large for Lua becomes a float rather than wrapping around.
      assert.are.equal("float", math.type(assert(yaml.decode("99999999999999999999"))))
    end)

    it("keeps quoted and block scalars as text", function()
      local v = assert(yaml.decode([[
a: "1"
b: '~'
c: |
  keep
    indented

d: >-
  folded
  text
e: |-
  12
f: !!str 3
g: !!float 3
h: !!int "17"
]]))
      assert.are.same({ a = "1", b = "~", c = "keep\n  indented\n", d = "folded text", e = "12", f = "3",
        g = 3.0, h = 17 }, v)
      assert.are.equal("float", math.type(v.g))
      local _, err = yaml.decode("x: !!int nope\n", "t.yaml")
      assert.are.equal("yaml.decode: t.yaml:1:4: !!int: not a valid int: 'nope'", err)
    end)

    it("leaves out keys whose value is null, keeps nulls in sequences in place", function()
      local v = assert(yaml.decode("a: ~\nb:\nc: 1\nlist: [1, ~, 3]\n"))
      assert.are.same({ c = 1, list = { 1, yaml.null, 3 } }, v)
      assert.are.equal(3, #v.list)
      assert.are.equal(json.null, yaml.null)
    end)

    it("shares anchored values with their aliases", function()
      local v = assert(yaml.decode([[
defaults: &d {retries: 3, services: [web]}
prod: *d
name: &n wiki
again: *n
]]))
      assert.are.equal(v.defaults, v.prod)
      assert.are.same({ retries = 3, services = { "web" } }, v.prod)
      assert.are.equal("wiki", v.again)
    end)

    it("refuses an alias inside the node it names: a cycle nothing could encode", function()
      local v, err, code = yaml.decode("ok: 1\nloop: &l [1, *l]\n", "p.yaml")
      assert.is_nil(v)
      assert.are.equal("EYAML", code)
      assert.are.equal("yaml.decode: p.yaml:2:14: alias *l is inside the node &l it names (a cycle)", err)
    end)

    it("refuses an alias bomb at decode time, with a node budget", function()
      -- 342 bytes that name 9^9 (387 million) leaves through nested aliases
      local lines = { 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]' }
      local prev = "a"
      for n in ("bcdefghi"):gmatch(".") do
        lines[#lines + 1] = n .. ": &" .. n .. " [" .. ("*" .. prev .. ","):rep(8) .. "*" .. prev .. "]"
        prev = n
      end
      local v, err, code = yaml.decode(table.concat(lines, "\n"), "bomb.yaml")
      assert.is_nil(v)
      assert.are.equal("EYAML", code)
      assert.matches("^yaml%.decode: bomb%.yaml:7:%d+: aliases expand to more than 1000000 nodes at %*f %(an alias bomb%?%)", err)
      -- the same shape under the budget decodes, aliases shared
      local small = assert(yaml.decode(table.concat(lines, "\n", 1, 5)))
      assert.are.equal(small.a, small.b[9])
      assert.are.equal(9, #small.e)
      -- the budget counts per document: each document of a stream has its own
      local docs = assert(yaml.decode_all(table.concat(lines, "\n", 1, 6) .. "\n---\n" .. table.concat(lines, "\n", 1, 6)))
      assert.are.equal(2, #docs)
    end)

    it("returns the first document; decode_all returns them all", function()
      local text = "a: 1\n---\nb: 2\n--- [3]\n"
      assert.are.same({ a = 1 }, yaml.decode(text))
      assert.are.same({ { a = 1 }, { b = 2 }, { 3 } }, yaml.decode_all(text))
      assert.are.same({}, yaml.decode_all(""))
      assert.are.equal('[]', json.encode(yaml.decode_all("")))
      assert.are.equal(yaml.null, yaml.decode(""))
      assert.are.equal(yaml.null, yaml.decode("# only a comment\n"))
    end)

    it("reports where a malformed document broke, as NAME:LINE:COLUMN", function()
      local cases = {
        { "id: x\n  symptom: y\n", "p.yaml:2:10: mapping values are not allowed in this context" },
        { "- id: x\n  tags: [a, b\n", "p.yaml:3:1: did not find expected ',' or ']', while parsing a flow "
          .. "sequence at line 2, column 9" },
        { "a: 1\nb: *missing\n", "p.yaml:2:4: unknown alias *missing (no anchor &missing before it)" },
        { "a: 1\nb: 2\na: 3\n", "p.yaml:3:1: duplicate key 'a'" },
        { "ok: 1\nbad: \"\xff\"\n", "p.yaml:2:7: invalid leading UTF-8 octet" },
        { "a: 'unterminated\n", "p.yaml:2:1: found unexpected end of stream, while scanning a quoted "
          .. "scalar at line 1, column 4" },
        { "? ~\n: 1\n", "p.yaml:1:3: a null mapping key cannot be a Lua table key" },
      }
      for _, c in ipairs(cases) do
        local v, err, code = yaml.decode(c[1], "p.yaml")
        assert.is_nil(v)
        assert.are.equal("yaml.decode: " .. c[2], err)
        assert.are.equal("EYAML", code)
      end
      local _, err = yaml.decode("a: [\n")
      assert.matches("^yaml%.decode: input:2:1: ", err)
    end)

    it("refuses documents nested deeper than 1000 levels, without crashing", function()
      local v, err = yaml.decode(string.rep("[", 5000) .. string.rep("]", 5000), "deep.yaml")
      assert.is_nil(v)
      assert.matches("^yaml%.decode: deep%.yaml:1:1001: nested too deeply", err)
    end)

    it("raises on a wrong argument type, naming the function", function()
      assert.has_error(function() yaml.decode(nil) end, "bad argument #1 to 'decode' (string expected, got nil)")
      assert.has_error(function() yaml.decode_all("a", 3) end,
        "bad argument #2 to 'decode_all' (string expected, got number)")
    end)

    it("frees the parser of a failed decode (collected, no leak under ASan)", function()
      for _ = 1, 200 do
        assert.is_nil(yaml.decode("a: [1, 2\nb: &x {c: *y}\n", "leak.yaml"))
      end
      collectgarbage()
      collectgarbage()
    end)
  end)

  describe("read", function()
    it("reads a file and names it in errors", function()
      local d = h.tmpdir()
      h.spit(d .. "/ok.yaml", TEMPLATE)
      assert.are.equal("<kebab-case-id>", assert(yaml.read(d .. "/ok.yaml"))[1].id)
      h.spit(d .. "/bad.yaml", "a: 1\n  b: 2\n")
      local v, err, code = yaml.read(d .. "/bad.yaml")
      assert.is_nil(v)
      assert.are.equal("yaml.read: " .. d .. "/bad.yaml:2:4: mapping values are not allowed in this context", err)
      assert.are.equal("EYAML", code)
      v, err, code = yaml.read(d .. "/missing.yaml")
      assert.is_nil(v)
      assert.are.equal("yaml.read: " .. d .. "/missing.yaml: No such file or directory", err)
      assert.are.equal("ENOENT", code)
      v, err, code = yaml.read(d)
      assert.is_nil(v)
      assert.are.equal("yaml.read: " .. d .. ": Is a directory", err)
      assert.are.equal("EISDIR", code)
    end)
  end)

  describe("encode", function()
    local function roundtrip(v)
      local text = yaml.encode(v)
      local back, err = yaml.decode(text, "encoded")
      assert(err == nil, tostring(err) .. "\n" .. text)
      return back, text
    end

    it("writes block style with sorted keys", function()
      assert.are.equal([[
detection:
  - command: just status wikijs
    expect: healthy
id: release-verify-race
services:
  - wikijs
symptom: |
  unhealthy
  after recreate
]], yaml.encode({
        id = "release-verify-race",
        symptom = "unhealthy\nafter recreate\n",
        detection = { { command = "just status wikijs", expect = "healthy" } },
        services = { "wikijs" },
      }))
    end)

    it("round-trips the playbook template", function()
      local v = assert(yaml.decode(TEMPLATE))
      local back, text = roundtrip(v)
      assert.are.same(v, back)
      assert.are.equal(text, yaml.encode(back))  -- deterministic
      local w = assert(yaml.decode(VERIFY_RACE))
      assert.are.same(w, (roundtrip(w)))
    end)

    it("quotes strings that would read back as something else", function()
      local strings = { "1", "-7", "0x1F", "1.5", ".inf", "true", "False", "null", "~", "", " lead",
        "trail ", "a: b", "a #b", "key:", "- item", "[x]", "{x}", "*alias", "&anchor", "!tag", "|", ">",
        "'q'", '"q"', "%dir", "@at", "`tick", "#c", "---", "...", "tab\there", "nul\0byte", "cr\rlf",
        "ünïcødé", "it's", "yes", "a,b", "x\n", "\n", "two\n\n", "  indented\nlines", "lines\n  indented\n",
        "no newline\nat end", "trailing  \nspaces  \n", "\nleading newline", "?", "-", ":" }
      for _, s in ipairs(strings) do
        local back = roundtrip({ s, key = s, nested = { s } })
        assert.are.equal(s, back[1])
        assert.are.equal(s, back.key)
        assert.are.equal(s, back.nested[1])
        assert.are.equal(s, yaml.decode(yaml.encode(s)))
        local bk = roundtrip({ [s] = 1 })
        assert.are.equal(1, bk[s])
      end
    end)

    it("round-trips numbers, booleans, null items and nested shapes", function()
      local v = {
        int = 42, neg = -1, big = math.maxinteger, small = math.mininteger, f = 3.0, third = 1 / 3,
        tiny = 1e-300, huge = 1e300, inf = math.huge, ninf = -math.huge, t = true, ff = false,
        list = { 1, yaml.null, "x" }, empty_map = {}, empty_list = json.array(),
        grid = { { 1, 2 }, { json.array(), {} }, { { a = { b = { c = "deep" } } } } },
        [1.5] = "float key", [7] = "int key", [true] = "bool key",
      }
      local back = roundtrip(v)
      assert.are.same(v, back)
      assert.are.equal("float", math.type(back.f))
      assert.are.equal("integer", math.type(back.int))
      assert.are.equal(json.encode(v.grid), json.encode(back.grid))
      local nan = roundtrip({ x = 0 / 0 }).x
      assert.is_true(nan ~= nan)
    end)

    it("writes scalars and empty tables as whole documents", function()
      assert.are.equal("42\n", yaml.encode(42))
      assert.are.equal("'42'\n", yaml.encode("42"))
      assert.are.equal("null\n", yaml.encode(yaml.null))
      assert.are.equal("{}\n", yaml.encode({}))
      assert.are.equal("[]\n", yaml.encode(json.array()))
      assert.are.equal("- 1\n- - 2\n  - 3\n", yaml.encode({ 1, { 2, 3 } }))
    end)

    it("refuses what it cannot write, naming where", function()
      assert.has_error(function() yaml.encode({ a = { f = print } }) end,
        "yaml.encode: cannot encode a function (value.a.f)")
      local cyc = { name = "x" }
      cyc.self = cyc
      assert.has_error(function() yaml.encode(cyc) end, "yaml.encode: a table contains itself (value.self)")
      assert.has_error(function() yaml.encode({ "\xff" }) end, "yaml.encode: value[1] is not valid UTF-8 text")
      assert.has_error(function() yaml.encode({ [{}] = 1 }) end,
        "yaml.encode: cannot encode a key of type table (value)")
    end)

    it("writes a shared (not cyclic) table twice", function()
      local shared = { x = 1 }
      assert.are.same({ a = { x = 1 }, b = { x = 1 } }, (roundtrip({ a = shared, b = shared })))
    end)
  end)
end)
