-- The release-run recipe (recipes/release.lua): a per-ticket script or migration called a
-- service's API with a key the service no longer accepts ("[WIKIJS] ERROR: could not read
-- theming config: Forbidden"). The fix runs the regeneration command configured in
-- RELEASE_KEY_REGEN; RELEASE_KEY_CHECK (optional) is a command that exits 0 when the key
-- is accepted, used to confirm the diagnosis and to verify the fix.
local function key_check(ctx, want_ok)
  local cmd = os.getenv("RELEASE_KEY_CHECK")
  if not cmd or cmd == "" then return true, "RELEASE_KEY_CHECK is not set: judged by the symptom alone" end
  local res = ctx:sh(cmd, { check = false, timeout = 30 })
  local ok = res.code == 0
  if want_ok then return ok, ok and "the key is accepted" or ("the key is refused (exit " .. tostring(res.code) .. ")") end
  return not ok, ok and "the key is accepted now: not a stale key" or "the key is refused"
end

return {
  id = "release-stale-api-key",
  title = "A service refused a stale API key",
  symptom = { output = { "Forbidden", "403 Forbidden" } },
  detect = {
    { name = "RELEASE_KEY_CHECK refuses the key", check = function(ctx) return key_check(ctx, false) end },
  },
  root_cause = [[
The service's API key was rotated or reset (a recreate, a restore) while the deployment
kept the old one, so calls made during the release are refused.]],
  fix = {
    describe = function()
      local cmd = os.getenv("RELEASE_KEY_REGEN")
      return cmd and ("run RELEASE_KEY_REGEN: " .. cmd)
        or "run RELEASE_KEY_REGEN (not set: set it to the command that regenerates the key, e.g. just wikijs-configure)"
    end,
    run = function(ctx)
      local cmd = os.getenv("RELEASE_KEY_REGEN")
      if not cmd or cmd == "" then
        error("RELEASE_KEY_REGEN is not set: set it to the command that regenerates the service's API key", 0)
      end
      ctx:sh(cmd)
    end,
    bootstrap_change = "regenerate the key whenever the service is recreated (post-start init)",
  },
  verify = {
    { name = "RELEASE_KEY_CHECK accepts the key", check = function(ctx) return key_check(ctx, true) end },
  },
  tags = { "release", "secrets" },
}
