-- doc/ci.md's GitHub Actions workflow and GitLab CI job, run as the CI would run them:
-- their commands (taken from the document), with the CI's environment variables, against a
-- sandbox project whose release fails once and is then re-run. Checks what relua printed
-- (groups, sections, annotations, masks) and wrote (the job summary, the status file).
local h = require "support.h"
local yaml = require "relua.yaml"

local RECIPE = [[
local function step(name) return { name = name, run = function(r) r:sh("echo building " .. name) end } end
return { name = "demo", phases = {
  step("build"),
  { name = "publish", run = function(r)
      r:sh("echo using token $PYPI_TOKEN")
      if io.open("broken") then error("the index refused the upload") end
    end },
  step("tag"),
} }
]]

local TOKEN = "pypi-AgEIcHlwaS5vcmcCJDk3ZmQ4"

-- The YAML blocks of doc/ci.md, decoded, in order.
local function documented()
  local text = h.slurp(h.root .. "/doc/ci.md")
  local docs = {}
  for block in text:gmatch("```yaml\n(.-)```") do docs[#docs + 1] = assert(yaml.decode(block)) end
  return docs
end

-- A sandbox project, with `relua` on PATH as the binary under test.
local function project()
  local d = h.tmpdir()
  assert(os.execute("mkdir -p " .. h.quote(d .. "/recipes") .. " " .. h.quote(d .. "/bin")))
  h.spit(d .. "/recipes/release.lua", RECIPE)
  local bin = h.bin:sub(1, 1) == "/" and h.bin or h.root .. "/" .. h.bin
  assert(os.execute("ln -s " .. h.quote(bin) .. " " .. h.quote(d .. "/bin/relua")))
  h.spit(d .. "/broken", "")
  return d
end

local function expand(s, vars)
  return (s:gsub("%${{%s*([%w%._]+)%s*}}", function(k) return vars[k] or "" end))
end

-- Runs the job's steps as GitHub does: `bash -e`, later steps skipped after a failure unless
-- `if: always()`; `uses:` steps and the installation are the runner's (tested elsewhere).
local function github_job(job, d, vars, env)
  local results, failed = {}, false
  for _, step in ipairs(job.steps) do
    if step.run and step.name ~= "Install relua" and (not failed or step["if"] == "always()") then
      local e = {}
      for k, v in pairs(env) do e[k] = v end
      for k, v in pairs(step.env or {}) do e[k] = expand(v, vars) end
      local r = h.sh("bash -e -c " .. h.quote(expand(step.run, vars)), { cwd = d, env = e })
      results[step.name] = r
      if r.code ~= 0 then failed = true end
    end
  end
  return results
end

describe("doc/ci.md", function()
  after_each(h.cleanup)

  it("GitHub Actions: groups, an annotation with the resume command, masks, the job summary; a re-run resumes", function()
    local workflow = documented()[1]
    local d = project()
    local summary = d .. "/step-summary.md"
    local env = { GITHUB_ACTIONS = "true", CI = "true", GITHUB_STEP_SUMMARY = summary, GITHUB_WORKSPACE = d,
      PATH = d .. "/bin:" .. os.getenv("PATH"), GITLAB_CI = false, NO_COLOR = false }
    local vars = { ["inputs.version"] = "1.2.0", ["secrets.PYPI_TOKEN"] = TOKEN, ["github.run_id"] = "77",
      ["github.run_attempt"] = "1" }
    local steps = github_job(workflow.jobs.release, d, vars, env)
    local r = steps.Release
    assert.are.equal(1, r.code, r.stdout .. r.stderr)
    -- the token is registered with the runner, and never printed otherwise
    assert.matches("::add-mask::" .. TOKEN .. "\n", r.stdout, 1, true)
    local _, n = r.stdout:gsub(TOKEN:gsub("%p", "%%%0"), "")
    assert.are.equal(1, n)
    assert.is_nil(r.stderr:find(TOKEN, 1, true))
    assert.matches("using token ***", r.stdout, 1, true)
    -- one group per phase that ran, the failed one closed too
    assert.matches("::group::phase build\nphase build: running\n.-::endgroup::\n::group::phase publish\n", r.stdout)
    assert.matches("::error title=relua%3A run of phase publish failed (rc=1)::recipes/release.lua:6: the index refused the upload"
      .. "%0Arelease failed in phase publish (rc=1). Resume: relua recipes/release.lua 1.2.0 --from=publish. "
      .. "Roll back: relua revert 1.2.0.", r.stdout, 1, true)
    assert.is_nil(r.stdout:find("::group::phase tag", 1, true))
    -- the status step ran after the failure and wrote its file
    assert.are.equal(0, steps.Status.code, steps.Status.stderr)
    local status = require("relua.json").decode(h.slurp(d .. "/relua-status.json"))
    assert.are.equal("failed", status.status)
    assert.are.equal("publish", status.failed.phase)
    -- the job summary
    local md = h.slurp(summary)
    assert.matches("### relua: release of ticket `1.2.0`: failed in phase publish (rc=1)\n", md, 1, true)
    assert.matches("| build | ✅ done | %d+%.%d%ds |\n| publish | ❌ failed %(rc=1%) | %d+%.%d%ds |\n| tag | pending |  |\n", md)
    assert.matches("Resume: `relua recipes/release.lua 1.2.0 --from=publish`", md, 1, true)

    -- "Re-run failed jobs": the cause fixed, the same steps continue where it stopped
    os.remove(d .. "/broken")
    vars["github.run_attempt"] = "2"
    steps = github_job(workflow.jobs.release, d, vars, env)
    r = steps.Release
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("phase build: done earlier, skipped", r.stdout, 1, true)
    assert.is_nil(r.stdout:find("::group::phase build", 1, true))
    assert.matches("::group::phase publish\n", r.stdout, 1, true)
    assert.matches("::group::phase tag\n", r.stdout, 1, true)
    assert.are.equal("done", require("relua.json").decode(h.slurp(d .. "/relua-status.json")).status)
    md = h.slurp(summary)
    assert.matches("### relua: release of ticket `1.2.0`: done\n", md, 1, true)
    assert.matches("| tag | ✅ done |", md, 1, true)
  end)

  it("GitLab CI: collapsible sections; after_script writes the status; a retry resumes", function()
    local job = documented()[2].release
    local d = project()
    local env = { GITLAB_CI = "true", CI = "true", CI_COMMIT_TAG = "v1.2.0", PYPI_TOKEN = TOKEN,
      PATH = d .. "/bin:" .. os.getenv("PATH"), GITHUB_ACTIONS = false }
    local function run(lines)
      local out = {}
      for _, line in ipairs(lines) do
        local r = h.sh(line, { cwd = d, env = env })
        out[#out + 1] = r
        if r.code ~= 0 then break end
      end
      return out
    end
    local r = run(job.script)[1]
    assert.are.equal(1, r.code)
    assert.matches("\27%[0Ksection_start:%d+:relua_build%[collapsed=true%]\r\27%[0Kphase build\n", r.stdout)
    assert.matches("\27%[0Ksection_end:%d+:relua_build\r\27%[0K\n", r.stdout)
    assert.matches("section_start:%d+:relua_publish", r.stdout)
    assert.is_nil(r.stdout:find("::", 1, true))  -- no GitHub commands on GitLab
    -- the failure is printed after the failed phase's section closes: visible, not folded away
    local both = h.sh(job.script[1] .. " 2>&1", { cwd = d, env = env }).stdout
    local closed = assert(both:find("section_end:%d+:relua_publish"), both)
    local failed = assert(both:find("relua: phase publish failed", 1, true), both)
    local resume = assert(both:find("Resume: relua recipes/release.lua 1.2.0 --from=publish", 1, true), both)
    assert.is_true(closed < failed and closed < resume, both)
    assert.is_nil((r.stdout .. r.stderr):find(TOKEN, 1, true))
    assert.are.equal(0, run(job.after_script)[1].code)
    assert.are.equal("failed", require("relua.json").decode(h.slurp(d .. "/relua-status.json")).status)
    os.remove(d .. "/broken")
    r = run(job.script)[1]
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("phase build: done earlier, skipped", r.stdout, 1, true)
    run(job.after_script)
    assert.are.equal("done", require("relua.json").decode(h.slurp(d .. "/relua-status.json")).status)
  end)

  it("the job summary and --json list what the run published", function()
    local reg = require "support.registries"
    local server = reg.pypi()
    local ok, e = pcall(function()
      local d = h.tmpdir()
      local whl = reg.build_dists(d .. "/dist", { "Summary.Pkg", "1.0" })[1]
      h.spit(d .. "/r.lua", string.format([[
return { phases = { { name = "publish", run = function(r)
  require("relua.registry.pypi").publish(%q, { url = %q, index = %q, user = "relua" })
end } } }]], whl, server.legacy, server.index))
      local summary = d .. "/summary.md"
      local env = { GITHUB_ACTIONS = "true", GITHUB_STEP_SUMMARY = summary, PYPI_TOKEN = server.password,
        TWINE_PASSWORD = false, GITLAB_CI = false }
      local r = h.relua({ "r.lua", "1.0", "--json" }, { cwd = d, env = env })
      assert.are.equal(0, r.code, r.stderr)
      local s = require("relua.json").decode(r.stdout)
      assert.are.same({ { label = "Summary_Pkg-1.0-py3-none-any.whl", where = server.legacy, adapter = "pypi",
        status = "published" } }, s.published)
      assert.matches("| artifact | where | outcome |\n|---|---|---|\n| Summary_Pkg-1.0-py3-none-any.whl | "
        .. server.legacy .. " | published |\n", h.slurp(summary), 1, true)
      r = h.relua({ "r.lua", "1.1", "--json" }, { cwd = d, env = env })
      assert.are.equal("skipped_existing", require("relua.json").decode(r.stdout).published[1].status)
    end)
    server.stop()
    if not ok then error(e, 0) end
  end)

  it("elsewhere: plain lines", function()
    local d = project()
    local r = h.relua({ "recipes/release.lua", "1.0" }, { cwd = d, env = { GITHUB_ACTIONS = false, GITLAB_CI = false } })
    assert.are.equal(1, r.code)
    assert.is_nil(r.stdout:find("::", 1, true))
    assert.is_nil(r.stdout:find("\27", 1, true))
    assert.is_nil(r.stderr:find("\27", 1, true))
  end)
end)
