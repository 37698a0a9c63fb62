-- recipes/pypi-npm.lua: the build phase failed (a build tool missing on the runner, the
-- network, a disk, or the code). The builds gate every publish, so nothing is out: the
-- fix is outside the release (the runner, or the code), and the verify runs the build
-- commands once more into a scratch folder before the release resumes at build.
local fs = require "relua.fs"

return {
  id = "pypi-npm-build-broke",
  title = "The build broke: nothing was published",
  symptom = { phase = "build" },
  detect = {
    -- quick: it reads only the ticket's state, so the failed run's hint runs it too
    { name = "nothing of this release is published", quick = true, check = function(ctx)
        if not (ctx.recipe and ctx.recipe._pn) then return false, "not a pypi-npm release" end
        local pub = type(ctx.state.publish) == "table" and ctx.state.publish or {}
        if pub.npm or pub.pypi then return false, "this ticket already published: see relua status" end
        return true, "no publish recorded for " .. tostring(ctx.state.TAG)
      end },
  },
  root_cause = [[
The build of the release commit failed. It runs before any publish, so no registry has
anything of this version: the release is safe to retry. A cause outside the code (a tool
missing on the runner, the network, a full disk) is fixed where it is, then the build is
run again. A code fix changes the release commit: `relua revert TICKET` (nothing is
published, so the tag is deleted), push the fix, and run the ticket again; it cuts the same
version from the fixed branch.]],
  fix = {
    describe = "nothing to undo (nothing is published): fix the cause on the runner, then the build is checked and resumed",
    run = function(ctx)
      ctx:log("nothing was published for " .. tostring(ctx.state.TAG) .. ": the build will run again")
    end,
    bootstrap_change = "pin the build tools in the runner image; build in CI before releasing",
  },
  verify = {
    { name = "the build commands succeed now (into a scratch folder)", check = function(ctx)
        local pn = ctx.recipe._pn
        local cfg = pn.config
        local repo <close> = pn.checkout()
        local root = (repo:workdir():gsub("/$", ""))
        local tmp = assert(fs.tmpdir("relua-pn-build-"))
        local env = { PYPI_NPM_DIST_PYPI = fs.join(tmp, "pypi"), PYPI_NPM_DIST_NPM = fs.join(tmp, "npm") }
        assert(fs.mkdir(env.PYPI_NPM_DIST_PYPI))
        assert(fs.mkdir(env.PYPI_NPM_DIST_NPM))
        local runs = { { cfg.build_python, fs.join(root, cfg.python_dir) } }
        for _, d in ipairs(cfg.npm_dirs) do runs[#runs + 1] = { cfg.build_npm, fs.join(root, d) } end
        for _, run in ipairs(runs) do
          local res = ctx:sh(run[1], { cwd = run[2], env = env, check = false, timeout = 120 })
          if res.code ~= 0 then
            fs.remove(tmp, { recursive = true })
            return false, string.format("%s exited %s in %s", run[1], tostring(res.code), run[2])
          end
        end
        fs.remove(tmp, { recursive = true })
        return true, "the Python build and " .. #cfg.npm_dirs .. " npm pack(s) succeed"
      end, timeout = 300 },
  },
  resume = "build",
  tags = { "pypi-npm", "build" },
}
