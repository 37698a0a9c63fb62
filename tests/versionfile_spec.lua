-- relua.versionfile and `relua version set/get`: the version changes, every other byte of
-- realistic project files stays (comments, odd spacing, CRLF, key order, and the `version`
-- keys of dependencies).
local vf = require "relua.versionfile"
local h = require "support.h"
local fs = require "relua.fs"

-- Writes content, sets the version, and checks that exactly `old` became `new` once.
local function roundtrip(dir, name, content, old, version)
  local path = h.spit(dir .. "/" .. name, content)
  assert.are.equal(old, (vf.get(path)))
  assert.are.equal(old, vf.set(path, version))
  local want = content:gsub(old:gsub("%p", "%%%0"), (version:gsub("%%", "%%%%")), 1)
  assert.are.equal(want, h.slurp(path))
  assert.are.equal(version, (vf.get(path)))
  return path
end

local PYPROJECT = [[
# Packaging for demo-pkg.   (version = "0.0.0" in a comment is not the version)
[build-system]
requires = ["setuptools>=68", "wheel"]   # build deps
build-backend = "setuptools.build_meta"

[project]
name    =   "demo-pkg"
description = """A [project] with
version = "9.9.9" inside a string"""
authors = [{ name = "Rel Ua", email = "relua@example.test" }]
dependencies = [
    "requests>=2.31",   # a comment inside an array
    "tomli; python_version < '3.11'",
    [1, 2]
]
  version	=   '1.4.0rc1'     # bumped by relua
readme = "README.md"

[project.optional-dependencies]
dev = ["pytest>=7", { version = "1.0" }]

[tool.poetry.dependencies]
python = "^3.9"
requests = { version = "^2.31", optional = true }

[tool.setuptools.packages.find]
where = ["src"]
]]

local POETRY = "[tool.poetry]\r\nname = \"legacy\"\r\nversion = \"0.9.0\" # poetry\r\n\r\n"
  .. "[tool.poetry.dependencies]\r\nversion = \"1.0\"\r\nrequests = {version = \"^2.0\"}\r\n"

local PACKAGE_JSON = [[
{
  "name": "@relua/demo",
  "description": "a \"version\": \"0.0.0\" in a string",
  "dependencies": {
    "version": "1.0.0",
    "left-pad": "^1.3.0"
  },
  "config": { "nested": { "version": "9.9.9" } },
  "files": ["dist", {"version": "x"}],
  "version" :   "2.3.4-beta.1",
  "scripts": { "test": "node test.js" }
}
]]

local CARGO = [[
[package]
name = "relua-demo"
# version = "0.0.0" (a comment)
version = "0.7.3"
edition = "2021"
authors = ["Rel Ua <relua@example.test>"]

[dependencies]
serde = { version = "1.0", features = ["derive"] }
tokio = { version = "1", features = ["full"] }

[dependencies.rand]
version = "0.8"

[dev-dependencies]
version_check = "0.9"
]]

local INIT_PY = [[
"""demo package.

__version__ = "0.0.0" in a docstring line that does not start the line
"""
from ._impl import thing  # noqa

    # __version__ = "indented, not top level"
__version__: str = '3.1.4'
__all__ = ["thing", "__version__"]
]]

describe("relua.versionfile", function()
  after_each(h.cleanup)

  it("sets [project] version in pyproject.toml and nothing else", function()
    roundtrip(h.tmpdir(), "pyproject.toml", PYPROJECT, "1.4.0rc1", "1.4.0")
  end)

  it("sets [tool.poetry] version, keeping CRLF line ends", function()
    roundtrip(h.tmpdir(), "pyproject.toml", POETRY, "0.9.0", "1.0.0.post1")
  end)

  it("sets the top-level version of package.json, not nested ones", function()
    roundtrip(h.tmpdir(), "package.json", PACKAGE_JSON, "2.3.4-beta.1", "2.3.4")
  end)

  it("sets [package] version in Cargo.toml, not the dependencies'", function()
    roundtrip(h.tmpdir(), "Cargo.toml", CARGO, "0.7.3", "0.8.0")
  end)

  it("sets a top-level __version__ in a Python module", function()
    roundtrip(h.tmpdir(), "__init__.py", INIT_PY, "3.1.4", "3.2.0.dev1")
  end)

  it("checks the version for the file's ecosystem before writing anything", function()
    local dir = h.tmpdir()
    local path = h.spit(dir .. "/Cargo.toml", CARGO)
    local ok, e = pcall(vf.set, path, "1.0")
    assert.is_false(ok)
    assert.are.equal(2, e.exit)
    assert.truthy(e.message:find("'1.0' is not a version", 1, true), e.message)
    assert.are.equal(CARGO, h.slurp(path))
    path = h.spit(dir .. "/pyproject.toml", PYPROJECT)
    ok, e = pcall(vf.set, path, "1.x")
    assert.is_false(ok)
    assert.truthy(e.message:find("not a PEP 440 version", 1, true))
    assert.are.equal(PYPROJECT, h.slurp(path))
  end)

  it("explains a file without a version: dynamic, workspace-inherited, missing", function()
    local dir = h.tmpdir()
    local cases = {
      { "pyproject.toml", '[project]\nname = "x"\ndynamic = ["version", "readme"]\n', "the version is dynamic" },
      { "Cargo.toml", '[package]\nname = "member"\nversion.workspace = true\n', "version.workspace = true" },
      { "Cargo.toml", '[package]\nname = "member"\nversion = { workspace = true }\n', "not a version string" },
      { "package.json", '{"name": "x", "dependencies": {"version": "1.0.0"}}', 'no top-level "version"' },
      { "x.py", 'def f():\n    __version__ = "1.0"\n', "no top-level __version__" },
    }
    for _, c in ipairs(cases) do
      local path = h.spit(dir .. "/" .. c[1], c[2])
      local ok, e = pcall(vf.set, path, "1.0.0")
      assert.is_false(ok, c[1])
      assert.are.equal("no_version", e.code)
      assert.are.equal(2, e.exit)
      assert.truthy(e.message:find(c[3], 1, true), e.message)
      assert.are.equal(c[2], h.slurp(path))
    end
    local ok, e = pcall(vf.get, dir .. "/setup.cfg")
    assert.is_false(ok)
    assert.are.equal(2, e.exit)
    ok, e = pcall(vf.get, dir .. "/missing/pyproject.toml")
    assert.is_false(ok)
    assert.are.equal(2, e.exit)
  end)

  it("works from the command line, several files at once", function()
    local dir = h.tmpdir()
    local py = h.spit(dir .. "/pyproject.toml", PYPROJECT)
    local js = h.spit(dir .. "/package.json", PACKAGE_JSON)
    local r = h.relua({ "version", "set", "1.5.0", py, js })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal(py .. ": 1.4.0rc1 -> 1.5.0\n" .. js .. ": 2.3.4-beta.1 -> 1.5.0\n", r.stdout)
    assert.are.equal("1.5.0\n", h.relua({ "version", "get", js }).stdout)
    r = h.relua({ "version", "set", "1.5.0" })
    assert.are.equal(2, r.code)
    assert.truthy(r.stderr:find("needs a version and at least one file", 1, true))
    assert.is_true(fs.exists(py))
  end)
end)
