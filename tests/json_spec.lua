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
end)
