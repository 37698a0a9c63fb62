--- relua.conventional: Conventional Commits 1.0 (https://www.conventionalcommits.org):
-- parse commit messages, decide the bump a set of commits calls for, and write release
-- notes grouped by type. Pure functions over commit tables ({id=, message=}, as relua.git's
-- log gives them); relua.versioning adds the git history and the tags.
--
-- The defaults follow semantic-release with the conventionalcommits preset, so the two give
-- the same answer: a breaking change (`type!:` or a `BREAKING CHANGE:` / `BREAKING-CHANGE:`
-- footer) -> major; feat -> minor; fix, perf, revert -> patch; notes sections Features, Bug
-- Fixes, Performance Improvements, Reverts (docs, style, chore, refactor, test, build and ci
-- are hidden unless breaking).
local M = {}

--- The release level each type calls for (types not listed call for none).
M.RULES = { feat = "minor", fix = "patch", perf = "patch", revert = "patch" }

--- The notes sections, in order: {type=, section=, hidden=}.
M.TYPES = {
  { type = "feat", section = "Features" },
  { type = "feature", section = "Features" },
  { type = "fix", section = "Bug Fixes" },
  { type = "perf", section = "Performance Improvements" },
  { type = "revert", section = "Reverts" },
  { type = "docs", section = "Documentation", hidden = true },
  { type = "style", section = "Styles", hidden = true },
  { type = "chore", section = "Miscellaneous Chores", hidden = true },
  { type = "refactor", section = "Code Refactoring", hidden = true },
  { type = "test", section = "Tests", hidden = true },
  { type = "build", section = "Build System", hidden = true },
  { type = "ci", section = "Continuous Integration", hidden = true },
}

local LEVEL = { patch = 1, minor = 2, major = 3 }
local NAME = { "patch", "minor", "major" }

---@class relua.conventional.Commit
---@field id string?          the commit id, when the input had one
---@field type string         lower case ("feat")
---@field scope string?
---@field subject string
---@field breaking boolean
---@field notes string[]      the breaking-change texts (from footers, or the subject of `type!:`)
---@field header string
---@field body string?

-- A footer line: "Token: value" or "Token #value" (Token without spaces, or BREAKING CHANGE).
local function footer_token(line)
  local tok, val = line:match("^(BREAKING CHANGE): ?(.*)$")
  if tok then return tok, val end
  tok, val = line:match("^([%w-]+): (.*)$")
  if tok then return tok, val end
  return line:match("^([%w-]+) (#.*)$")
end

--- Parses a commit message. Returns nil when its first line is not a conventional header
--- (`type(scope)!: subject`); a `Revert "..."` header (git revert's) is type "revert".
---@param message string
---@return relua.conventional.Commit|nil
function M.parse(message)
  if type(message) ~= "string" then
    error(string.format("conventional.parse: bad argument #1 (string expected, got %s)", type(message)), 2)
  end
  local header = message:match("^([^\n]*)")
  header = header:gsub("\r$", "")
  local typ, rest = header:match("^([%w_]+)(.*)$")
  local scope, bang, subject
  if typ then
    local s, r = rest:match("^(%b())(.*)$")
    if s then scope, rest = s:sub(2, -2), r end
    bang, subject = rest:match("^(!?): (.*)$")
  end
  if not subject then
    if not header:match('^Revert "(.*)"$') then return nil end
    typ, subject, bang = "revert", header, ""  -- git revert's header, shown as it is
  end
  local c = { type = typ:lower(), scope = scope, subject = subject, header = header,
              breaking = bang == "!", notes = {} }
  local body = message:match("^[^\n]*\n(.*)$")
  if body then
    body = body:gsub("^%s+", ""):gsub("%s+$", "")
    if body ~= "" then c.body = body end
  end
  if c.body then
    -- Footers: BREAKING CHANGE / BREAKING-CHANGE values run to the next footer token.
    local note
    for line in (c.body .. "\n"):gmatch("([^\n]*)\n") do
      line = line:gsub("\r$", "")
      local tok, val = footer_token(line)
      if tok == "BREAKING CHANGE" or tok == "BREAKING-CHANGE" then
        note = { val }
        c.notes[#c.notes + 1] = note
      elseif tok then
        note = nil
      elseif note then
        note[#note + 1] = line
      end
    end
    for i, n in ipairs(c.notes) do
      c.notes[i] = (table.concat(n, "\n"):gsub("^%s+", ""):gsub("%s+$", ""))
    end
    if #c.notes > 0 then c.breaking = true end
  end
  if c.breaking and #c.notes == 0 then c.notes[1] = c.subject end
  if c.type == "revert" then  -- what it reverts: {header=, id=} (git revert's message)
    local h, id = message:match('^[Rr]evert:?%s"?(.-)"?%s*This reverts commit (%x+)%.')
    if h then c.reverts = { header = h, id = id } end
  end
  return c
end

--- The release level one parsed commit calls for: "major", "minor", "patch" or nil.
---@param c relua.conventional.Commit
---@param opts {rules:table<string,string>?}?
---@return string|nil
function M.level(c, opts)
  if c.breaking then return "major" end
  local rules = opts and opts.rules or M.RULES
  return rules[c.type]
end

---@class relua.conventional.Analysis
---@field bump string|nil     "major", "minor", "patch" or nil (nothing to release)
---@field commits relua.conventional.Commit[]   the conventional commits, in the input order
---@field ignored integer     commits whose message is not conventional
--- A revert of a commit in the same list (git revert's "This reverts commit ID.") removes
--- both, as semantic-release does.

--- Analyzes a list of commits ({id=, message=} or message strings), newest first as git
--- log gives them: the highest level they call for, and the parsed commits.
---@param commits (table|string)[]
---@param opts {rules:table<string,string>?}?
---@return relua.conventional.Analysis
function M.analyze(commits, opts)
  local parsed, ignored, reverts = {}, 0, {}
  for _, raw in ipairs(commits) do
    local msg = type(raw) == "table" and raw.message or raw
    local c = M.parse(msg)
    if c then
      c.id = type(raw) == "table" and raw.id or nil
      parsed[#parsed + 1] = c
      if c.reverts then reverts[c.reverts.id] = c end
    else
      ignored = ignored + 1
    end
  end
  -- A commit reverted in the same range drops out, with its revert.
  local dropped = {}
  if next(reverts) then
    for _, c in ipairs(parsed) do
      local r = c.id and reverts[c.id]
      if r and r.reverts.header == c.header then dropped[c], dropped[r] = true, true end
    end
  end
  local best, out = 0, {}
  for _, c in ipairs(parsed) do
    if not dropped[c] then
      out[#out + 1] = c
      local l = LEVEL[M.level(c, opts) or ""] or 0
      if l > best then best = l end
    end
  end
  return { bump = NAME[best], commits = out, ignored = ignored }
end

-- Text order close to a person's (and to the collation semantic-release sorts with): case
-- folded first, then lower case before upper case.
local function text_less(a, b)
  local la, lb = a:lower(), b:lower()
  if la ~= lb then return la < lb end
  return a > b  -- the same letters: "a" before "A" (byte order reversed)
end

-- Entries sort by scope and subject read as one text (what conventional-changelog-writer
-- does), stable for equal texts.
local function scope_subject_less(x, y)
  local a, b = (x.scope or "") .. x.subject, (y.scope or "") .. y.subject
  if a ~= b then return text_less(a, b) end
  return x.seq < y.seq
end

---@class relua.conventional.NotesOptions
---@field version string?      the heading's version
---@field date string?         the heading's date (default today, UTC, YYYY-MM-DD)
---@field commit_url string?   a commit's link is commit_url .. full id ("https://host/o/r/commit/")
---@field compare_url string?  the heading's link; {from} and {to} are replaced by the tags
---@field from string?         the previous tag, for compare_url
---@field to string?           the new tag, for compare_url
---@field types table[]?       sections (default M.TYPES)

--- Release notes in Markdown from parsed commits (analyze(...).commits): a heading, the
--- breaking changes, then one section per type in the order of opts.types, each entry
--- `* **scope:** subject ([abc1234](commit_url..id))`, sorted by scope and subject.
---@param commits relua.conventional.Commit[]
---@param opts relua.conventional.NotesOptions?
---@return string markdown
function M.notes(commits, opts)
  opts = opts or {}
  local types = opts.types or M.TYPES
  local rank, by_type = {}, {}
  for i, t in ipairs(types) do
    by_type[t.type] = t
    if t.section and rank[t.section] == nil then rank[t.section] = i end
  end
  local groups, order, breaking = {}, {}, {}
  for _, c in ipairs(commits) do
    local entry = by_type[c.type]
    if c.breaking or (entry and not entry.hidden) then
      local title = entry and entry.section or c.type
      if not groups[title] then
        groups[title] = {}
        order[#order + 1] = title
      end
      table.insert(groups[title], setmetatable({ seq = #groups[title] + 1 }, { __index = c }))
      for _, n in ipairs(c.notes) do breaking[#breaking + 1] = { scope = c.scope, text = n } end
    end
  end
  -- sections in the order of types; a type without a section first (as the preset does)
  for i, title in ipairs(order) do order[i] = { title = title, seq = i } end
  table.sort(order, function(a, b)
    local ra, rb = rank[a.title] or 0, rank[b.title] or 0
    if ra ~= rb then return ra < rb end
    return a.seq < b.seq
  end)
  local out = {}
  local function add(s) out[#out + 1] = s end
  local version = opts.version or "?"
  local date = opts.date or os.date("!%Y-%m-%d")
  if opts.compare_url and opts.from and opts.to then
    local url = opts.compare_url:gsub("{from}", (opts.from:gsub("%%", "%%%%"))):gsub("{to}", (opts.to:gsub("%%", "%%%%")))
    add(string.format("## [%s](%s) (%s)\n", version, url, date))
  else
    add(string.format("## %s (%s)\n", version, date))
  end
  if #breaking > 0 then
    add("\n### ⚠ BREAKING CHANGES\n\n")
    for _, n in ipairs(breaking) do
      add("* " .. (n.scope and n.scope ~= "" and ("**" .. n.scope .. ":** ") or "") .. n.text .. "\n")
    end
  end
  for _, g in ipairs(order) do
    local list = groups[g.title]
    table.sort(list, scope_subject_less)
    add("\n### " .. g.title .. "\n\n")
    for _, c in ipairs(list) do
      local line = "*"
      if c.scope and c.scope ~= "" and c.scope ~= "*" then line = line .. " **" .. c.scope .. ":**" end
      line = line .. " " .. c.subject
      if c.id then
        local short = c.id:sub(1, 7)
        if opts.commit_url then line = line .. string.format(" ([%s](%s%s))", short, opts.commit_url, c.id)
        else line = line .. " " .. short end
      end
      add(line .. "\n")
    end
  end
  return table.concat(out)
end

return M
