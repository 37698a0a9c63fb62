-- recipes/dual-push.lua: publish a Python package's wheel and sdist to two PyPI-compatible
-- indexes: a PRIMARY that must succeed (e.g. a Gitea package registry) and a FALLBACK that
-- is best effort (e.g. PyPI), so an outage or an abuse block of one index no longer breaks
-- the release. The TICKET is the version being released.
--
--   relua recipes/dual-push.lua 1.4.0            build (optional), check, publish to both
--   relua status 1.4.0                           per target and file: published, skipped...
--   relua recipes/dual-push.lua 1.4.0            after a failure: only what is missing is sent
--
-- Pre-flight (before anything runs): the primary's secrets are set and their names can be
-- repository secrets (Gitea and GitHub refuse names starting with GITEA_ or GITHUB_: a name
-- is proposed), the fallback's missing token is a note (it will be `skipped_no_token`), the
-- primary index answers, and, when the files are already built, no index holds other bytes
-- for this version. A primary failure fails the release; a fallback failure ends it "done
-- with warnings". A summary table (target, role, file, status) ends the publish phase and is
-- appended to $GITHUB_STEP_SUMMARY in CI.
--
-- Settings come from the environment:
--   DUAL_PUSH_PRIMARY_URL      the primary's upload URL (required), e.g.
--                              https://git.example.org/api/packages/acme/pypi/
--   DUAL_PUSH_FALLBACK_URL     the fallback's upload URL (default https://upload.pypi.org/legacy/)
--   DUAL_PUSH_PRIMARY_USER_FROM  the variable holding the primary's user name
--                              (default MOLECULE_PYPI_GITEA_PUBLISHER_USER)
--   DUAL_PUSH_PRIMARY_CRED_FROM the variable holding its token (default MOLECULE_PYPI_GITEA_PUBLISHER_TOKEN)
--   DUAL_PUSH_FALLBACK_CRED_FROM the variable holding the fallback's token (default PYPI_TOKEN)
--   DUAL_PUSH_FALLBACK_USER    the fallback's user name (default __token__, as PyPI wants)
--   DUAL_PUSH_DIST             the folder of the built wheel and sdist (default dist)
--   DUAL_PUSH_BUILD            a command that builds them in a `build` phase (e.g.
--                              "python3 -m build"); without it the files must be there
local targets = require "relua.publish.targets"
local preflight = require "relua.preflight"
local errors = require "relua.error"

local function env(name, default)
  local v = os.getenv(name)
  if v == nil or v == "" then return default end
  return v
end

local DIST = env("DUAL_PUSH_DIST", "dist")
local BUILD = env("DUAL_PUSH_BUILD")
local PRIMARY_URL = env("DUAL_PUSH_PRIMARY_URL")

local TARGETS = {
  { name = "primary", role = "primary", adapter = "pypi", artifacts = { DIST .. "/*.whl", DIST .. "/*.tar.gz" },
    opts = { url = PRIMARY_URL or "http://primary-index-not-set.invalid/" },
    secrets = { user = env("DUAL_PUSH_PRIMARY_USER_FROM", "MOLECULE_PYPI_GITEA_PUBLISHER_USER"),
                password = env("DUAL_PUSH_PRIMARY_CRED_FROM", "MOLECULE_PYPI_GITEA_PUBLISHER_TOKEN") } },
  { name = "fallback", role = "fallback", adapter = "pypi", artifacts = { DIST .. "/*.whl", DIST .. "/*.tar.gz" },
    opts = { url = env("DUAL_PUSH_FALLBACK_URL", "https://upload.pypi.org/legacy/"),
             user = env("DUAL_PUSH_FALLBACK_USER", "__token__") },
    secrets = { password = env("DUAL_PUSH_FALLBACK_CRED_FROM", "PYPI_TOKEN") } },
}

-- Every file in DIST must be this release's version: a wheel and an sdist, at least.
local function check_dist(version)
  local fs = require "relua.fs"
  local pypi = require "relua.registry.pypi"
  local pep440 = require "relua.pep440"
  local want = pep440.normalize(version)
  if not want then
    errors.usage(string.format("dual-push: the ticket '%s' is not a PEP 440 version", version),
      "the ticket is the version released, e.g. relua recipes/dual-push.lua 1.4.0")
  end
  local kinds = {}
  for _, pattern in ipairs({ DIST .. "/*.whl", DIST .. "/*.tar.gz" }) do
    for _, path in ipairs(fs.glob(pattern)) do
      local d = errors.check(pypi.inspect(path))
      if pep440.normalize(d.version) ~= want then
        errors.raise("wrong_version", string.format("dual-push: %s is version %s, not %s", path, d.version, version),
          { hint = "build the version being released (or remove the old files from " .. DIST .. "), then run again" })
      end
      kinds[d.filetype] = true
    end
  end
  if not kinds.bdist_wheel or not kinds.sdist then
    errors.raise("ENOENT", string.format("dual-push: %s needs a wheel and an sdist of %s (found: %s)", DIST, version,
      kinds.bdist_wheel and "a wheel only" or kinds.sdist and "an sdist only" or "nothing"),
      { hint = BUILD and "the build command did not produce both" or "build them first (python3 -m build), or set DUAL_PUSH_BUILD" })
  end
end

local checks = preflight.targets(TARGETS)
table.insert(checks, 1, { name = "primary index", run = function()
  if PRIMARY_URL then return true, PRIMARY_URL end
  return false, "DUAL_PUSH_PRIMARY_URL is not set: set it to the primary index's upload URL, "
    .. "e.g. https://git.example.org/api/packages/acme/pypi/"
end })
local phases = {}
if BUILD then
  phases[#phases + 1] = { name = "build", run = function(r) r:sh(BUILD) end }
  checks = { checks[1], checks[2], checks[3] }  -- the files do not exist yet: the publish phase looks first
end
phases[#phases + 1] = { name = "check", run = function(r) check_dist(r.ticket) end }
phases[#phases + 1] = { name = "publish", run = function(r) targets.publish(r, TARGETS, { title = "dual push " .. r.ticket }) end }

return {
  name = "dual-push",
  preflight = checks,
  phases = phases,
}
