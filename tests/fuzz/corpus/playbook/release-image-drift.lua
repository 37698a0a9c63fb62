-- The release-run recipe (recipes/release.lua): the health check found a service running
-- another image or version than the release's manifest ("✗ wikijs.image: got wiki:1,
-- expected wiki:2"): the recreate in migrate did not pick up the new image. The fix runs the
-- command configured in RELEASE_RECREATE (pull the images, recreate the services).
local function verify_cmd() return os.getenv("RELEASE_VERIFY") or "./verify.sh" end

return {
  id = "release-image-drift",
  title = "A service runs another image or version than the manifest",
  symptom = { phase = "verify", output = { match = "%.image: got [^,\n]+, expected " } },
  detect = {
    -- Still drifted now (not a transient): the health check reports it again.
    { name = "the health check still reports the drift", check = function(ctx)
        local res = ctx:sh(verify_cmd(), { check = false, timeout = 30 })
        local out = (res.stdout or "") .. (res.stderr or "")
        local line = out:match("[^\n]*%.image: got [^\n]*")
        return line ~= nil, line or "no drift reported now"
      end },
  },
  root_cause = [[
The services were recreated without pulling the new image first, so they still run the
old one. Check whether a pull step was needed (and that the tag exists in the registry).]],
  fix = {
    describe = function()
      local cmd = os.getenv("RELEASE_RECREATE")
      return cmd and ("run RELEASE_RECREATE: " .. cmd)
        or "run RELEASE_RECREATE (not set: set it to the command that pulls the images and recreates the services)"
    end,
    run = function(ctx)
      local cmd = os.getenv("RELEASE_RECREATE")
      if not cmd or cmd == "" then
        error("RELEASE_RECREATE is not set: set it to the command that pulls the images and recreates " ..
          "the services (e.g. docker compose pull && docker compose up -d --force-recreate)", 0)
      end
      ctx:sh(cmd)
    end,
    bootstrap_change = "pull the images before recreating the services in migrate",
  },
  verify = { { run = "${RELEASE_VERIFY:-./verify.sh}", expect = { code = 0 } } },
  resume = "verify",
  tags = { "release", "verify", "images" },
}
