local json = require "relua.json"

describe("relua.json", function()
  it("encodes with sorted keys and integers kept", function()
    assert.are.equal('{"a":1,"b":[1,2.5,"x"],"c":{"d":true}}',
      json.encode({ c = { d = true }, b = { 1, 2.5, "x" }, a = 1 }))
  end)

  it("keeps floats floats and reads integers back as integers", function()
    assert.are.equal("[3.0,3,0.1,1e+300]", json.encode({ 3.0, 3, 0.1, 1e300 }))
    local v = json.decode('{"n": 3, "f": 0.5, "big": 9007199254740993}')
    assert.are.equal("integer", math.type(v.n))
    assert.are.equal("float", math.type(v.f))
  end)

  it("writes pretty, deterministic output", function()
    local t = {}
    for i = 1, 50 do t["k" .. i] = i end
    local a, b = json.encode(t, { pretty = true }), json.encode(t, { pretty = true })
    assert.are.equal(a, b)
    assert.are.equal('{\n  "a": [\n    1\n  ],\n  "b": {}\n}', json.encode({ a = { 1 }, b = {} }, { pretty = true }))
  end)

  it("writes an empty array marked with json.array as []", function()
    assert.are.equal('{"list":[]}', json.encode({ list = json.array() }))
  end)

  it("escapes strings and control characters", function()
    assert.are.equal('"a\\"b\\\\c\\n\\u0001é"', json.encode('a"b\\c\n\1é'))
  end)

  it("round-trips a nested document", function()
    local doc = { name = "wiki", phases = { { name = "prepare", status = "done", rc = 0 } }, n = json.null }
    local back = json.decode(json.encode(doc))
    assert.are.same({ name = "wiki", phases = { { name = "prepare", status = "done", rc = 0 } }, n = json.null }, back)
  end)

  it("refuses what JSON cannot hold", function()
    assert.has_error(function() json.encode({ f = print }) end, "json.encode: cannot encode a function")
    assert.has_error(function() json.encode({ 1, 2, x = 3 }) end)
    assert.has_error(function() json.encode(0 / 0) end)
    local cyc = {}
    cyc.self = cyc
    assert.has_error(function() json.encode(cyc) end)
  end)

  it("says where malformed JSON broke", function()
    local v, err, code = json.decode('{\n  "a": [1,\n}', "state.json")
    assert.is_nil(v)
    assert.are.equal("EJSON", code)
    assert.matches("^json%.decode: state%.json: .* at line 3, column 1$", err)
  end)

  it("raises on a wrong argument type", function()
    assert.has_error(function() json.decode(42) end)
  end)

  describe("is strict RFC 8259", function()
    -- each text is a Lua string literal's body (so escapes such as \255 and \0 work)
    local refused = {
      { [[NaN]], "NaN and Infinity are not JSON at line 1, column 1" },
      { [=[[-Infinity]]=], "expected a digit, found 'I' at line 1, column 3" },
      { [=[[Infinity]]=], "NaN and Infinity are not JSON at line 1, column 2" },
      { [[0x1F]], "a malformed number %(JSON has no hex" },
      { [[012]], "a number with a leading zero at line 1, column 1" },
      { [=[[1e400]]=], "a number too large for a double %(more than 1%.8e308%) at line 1, column 2" },
      { [[1.]], "a number needs digits after its '%.'" },
      { [[.5]], "expected a value, found '%.'" },
      { [["\255"]], "invalid UTF%-8 in a string at line 1, column 2" },
      { [["\192\128"]], "invalid UTF%-8 in a string" },            -- overlong
      { [["\237\160\128"]], "invalid UTF%-8 in a string" },       -- an encoded surrogate
      { [["\\ud800"]], "a lone high surrogate" },
      { [["\\udc00x"]], "a lone low surrogate" },
      { [[{"a":1}\0{"b":2}]], "a NUL byte after the value at line 1, column 8" },
      { [["a\0b"]], "a NUL byte in a string %(write it as \\u0000%)" },
      { [["tab\there"]], "a control character in a string" },
      { [=[[1,]]=], "expected a value, found '%]' at line 1, column 4" },
      { [[{"a":1,}]], "expected a string key, found '}'" },
      { [[{\'a\':1}]], "expected a string key, found '''" },
      { [[{"a":1,"a":2}]], 'a duplicate key "a" at line 1, column 8' },
      { [[\239\187\191{}]], "a byte order mark" },
      { [[]], "no value %(the text is empty%)" },
      { [=[[1] [2]]=], "'%[' after the value at line 1, column 5" },
      { [[tru]], "expected a value, found 't'" },
      { [["\\x"]], "an invalid escape" },
    }
    for _, case in ipairs(refused) do
      it("refuses " .. case[1], function()
        local text = assert(load("return '" .. case[1] .. "'"))()
        local v, err, code = json.decode(text, "t.json")
        assert.is_nil(v)
        assert.are.equal("EJSON", code)
        assert.matches("^json%.decode: t%.json: " .. case[2], err)
      end)
    end

    it("refuses nesting deeper than 1000 levels", function()
      local v, err = json.decode(string.rep("[", 1001) .. string.rep("]", 1001))
      assert.is_nil(v)
      assert.matches("nested too deeply", err)
      assert.is_table(json.decode(string.rep("[", 1000) .. string.rep("]", 1000)))
    end)

    it("reads what RFC 8259 allows, integers exactly", function()
      assert.same({ a = { 1, json.null, { b = "\u{e9}" } }, c = -0.5, d = 1e-3 },
        json.decode(' {"a":[1,null,{"b":"\\u00e9"}], "c":-5e-1, "d":1E-3}\r\n'))
      assert.are.equal("\u{1F600}", json.decode('"\\ud83d\\ude00"'))
      assert.are.equal(9007199254740993, json.decode("9007199254740993"))
      assert.are.equal("integer", math.type(json.decode("3.0")))
      assert.are.equal("float", math.type(json.decode("9223372036854775808")))
      assert.are.equal(false, json.decode("false"))
    end)

    it("refuses to encode a string that is not valid UTF-8", function()
      assert.has_error(function() json.encode({ k = "a\255b" }) end,
        "json.encode: a string is not valid UTF-8 (at byte 2): JSON holds text only; store binary data as hex or base64")
      assert.has_error(function() json.encode({ ["\192\128"] = 1 }) end)
      assert.are.equal('"\u{e9}\u{1F600}"', json.encode("\u{e9}\u{1F600}"))
    end)
  end)
end)
