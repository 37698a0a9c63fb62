--- relua.cli: what the command line runs once the interpreter options are handled.
-- `relua FILE args...` runs FILE as a Lua script; a script that returns a recipe (a table
-- with `phases`) is handed to the release engine with its arguments. A first argument that
-- names a subcommand runs that instead (`relua ./status` runs a file called status).
--
-- Every subcommand is one `command { ... }` table below: its help (usage, options, exit
-- codes, examples) sits beside the function that runs it, and `relua help NAME`,
-- `relua NAME --help`, the man page and the shell completions all read it from here.
-- To add a command, add one table (see `command` for the fields).
local errors = require "relua.error"

local M = {}

--- Subcommands by name ("status", or "store copy" for a two-word command).
---@type table<string, relua.Command>
M.commands = {}

---@class relua.Command
---@field name string           "status", or two words: "store copy"
---@field summary string        one line for `relua help`
---@field usage string|string[] "relua status TICKET [--json]" (each line a way to call it)
---@field description string?   what it does, a paragraph
---@field options (string[])[]? { {"--json", "print JSON (doc/json.md)"}, ... }
---@field exits table<integer,string> exit status -> what it means
---@field examples string[]     command lines (a "# comment" after two spaces is fine)
---@field args string[]?        positional kinds for completion: "ticket", "recipe", "phase", "playbook", "file", "command"
---@field hidden boolean?       not listed, and its arguments are its own (no --help): internal helpers
---@field run fun(...:string):integer?

-- Exit statuses most commands share (README, "Exit codes").
M.EXIT_OK = "done"
M.EXIT_USAGE = "usage error: a missing or bad argument, an unknown option"
M.EXIT_CORRUPT = "bad input: an invalid recipe or ticket name, or a corrupt state file (left untouched)"
M.EXIT_LOCKED = "refused: another run holds the ticket's lock"
M.EXIT_FAILED = "a phase (or its revert) failed: the message says how to resume"
M.EXIT_INTERRUPTED = "interrupted by Ctrl-C; the running phase is recorded failed rc=130"
M.EXIT_TERMINATED = "terminated by SIGTERM (a cancelled CI job); the running phase is recorded failed rc=143"

--- Registers a subcommand (see relua.Command for the fields).
---@param spec relua.Command
function M.command(spec)
  assert(type(spec.name) == "string" and type(spec.run) == "function", "command: name and run are required")
  if not spec.hidden then
    assert(spec.summary and spec.usage and spec.exits and spec.examples,
      "command " .. spec.name .. ": summary, usage, exits and examples are required")
  end
  if type(spec.usage) == "string" then spec.usage = { spec.usage } end
  spec.options = spec.options or {}
  M.commands[spec.name] = spec
  return spec
end
local command = M.command

-- ------------------------------------------------------------------ the commands

command {
  name = "help", summary = "list the commands, or show one command's help",
  usage = "relua help [COMMAND]",
  description = "Without a COMMAND: every command with a one-line summary. With one: its usage, "
    .. "options, exit codes and an example (the same as `relua COMMAND --help`).",
  exits = { [0] = "shown", [2] = "unknown command" },
  examples = { "relua help", "relua help status" },
  args = { "command" },
  run = function(...) return require("relua.cli.help").help_command(M, ...) end,
}

command {
  name = "version", summary = "show relua's version and its libraries'",
  usage = "relua version",
  description = "relua's own version. The versions of a project: relua version next, notes, last, "
    .. "set, get, bump, compare (doc/version.md).",
  exits = { [0] = "shown", [2] = "an unknown subcommand" },
  examples = { "relua version", "relua version next" },
  run = function(...)
    return require("relua.versioning").run(nil, ...)
  end,
}

-- The versions of a project (lib/relua/versioning.lua, doc/version.md).
local NEXT_OPTIONS = {
  { "--bump=KIND", "auto (default: from the Conventional Commits), patch, minor or major" },
  { "--pre-major", "while the major is 0, a breaking change bumps the minor" },
  { "--prefix=P", "the release tags' prefix (default v)" },
  { "--from=REV", "what to release (default HEAD)" },
  { "--repo=DIR", "the repository (default: the one around the current folder)" },
  { "--initial=VERSION", "the version when no release tag exists (default 1.0.0)" },
  { "--commit-url=URL", "link each commit in the notes to URL followed by its id" },
  { "--compare-url=URL", "link the notes heading; {from} and {to} become the tags" },
  { "--date=YYYY-MM-DD", "the notes heading's date (default today, UTC)" },
}
local NEXT_EXITS = { [0] = "shown, or nothing to release (said on stderr)",
  [1] = "the repository could not be read", [2] = "a bad option, not a repository, or an unknown revision" }

command {
  name = "version next", summary = "the next version from the commits since the last tag",
  usage = "relua version next [--json] [--bump=KIND] [--pre-major] [--prefix=v] [--from=REV] [--repo=DIR]",
  description = "The highest SemVer release tag merged into HEAD, bumped by the commits since: fix "
    .. "(and perf, revert) a patch, feat a minor, `!` or a BREAKING CHANGE: footer a major. With "
    .. "nothing to release, prints nothing and says why on stderr.",
  options = { { "--json", "version, tag, bump, last release, commit count, changes and notes as JSON" },
    table.unpack(NEXT_OPTIONS) },
  exits = NEXT_EXITS,
  examples = { "relua version next", "relua version next --json | jq -r .tag", "relua version next --bump=minor" },
  run = function(...) return require("relua.versioning").run("next", ...) end,
}

command {
  name = "version notes", summary = "the next version's release notes (Markdown)",
  usage = "relua version notes [--tag=TAG] [--commit-url=URL] [--bump=KIND] [--prefix=v] [--from=REV] [--repo=DIR]",
  description = "Breaking changes, then Features, Bug Fixes, Performance Improvements and Reverts, "
    .. "each entry linked to its commit when --commit-url is given. With --tag, the notes of that "
    .. "release (existing or not yet tagged): the commits since the last release before it, as a "
    .. "forge release's default notes (doc/forge.md).",
  options = { { "--tag=TAG", "the notes of this release tag, up to its commit (or --from, or HEAD when it does not exist yet)" },
    table.unpack(NEXT_OPTIONS) },
  exits = NEXT_EXITS,
  examples = { "relua version notes --commit-url=https://github.com/me/app/commit/ > NOTES.md",
               "relua version notes --tag=v1.2.0" },
  run = function(...) return require("relua.versioning").run("notes", ...) end,
}

command {
  name = "version last", summary = "the last release tag reachable from HEAD",
  usage = "relua version last [--prefix=v] [--from=REV] [--repo=DIR] [--json]",
  options = { { "--json", "{tag, version, commit} or null" }, NEXT_OPTIONS[3], NEXT_OPTIONS[4], NEXT_OPTIONS[5] },
  exits = { [0] = "shown", [1] = "no release tag", [2] = "not a repository, or an unknown revision" },
  examples = { "relua version last" },
  run = function(...) return require("relua.versioning").run("last", ...) end,
}

command {
  name = "version set", summary = "write a version into project files, nothing else",
  usage = "relua version set VERSION FILE...",
  description = "Changes only the version's bytes ([project] or [tool.poetry] version, the top-level "
    .. "\"version\", [package] version, a top-level __version__ line); the version is checked first "
    .. "(PEP 440 for Python files, SemVer for the others).",
  exits = { [0] = "written (each file's old and new version shown)",
    [2] = "a bad version, a missing file, or a file without a version (left untouched)" },
  examples = { "relua version set 1.5.0 pyproject.toml src/app/__init__.py package.json" },
  args = { "file" },
  run = function(...) return require("relua.versioning").run("set", ...) end,
}

command {
  name = "version get", summary = "the version a project file declares",
  usage = "relua version get FILE",
  exits = { [0] = "shown", [2] = "a missing file, or a file without a version" },
  examples = { "relua version get Cargo.toml" },
  args = { "file" },
  run = function(...) return require("relua.versioning").run("get", ...) end,
}

command {
  name = "version bump", summary = "bump a SemVer version (major, minor, patch, ...)",
  usage = "relua version bump VERSION KIND [--preid=ID] [--build=META]",
  options = { { "--preid=ID", "the pre-release identifier (rc, beta, ...)" },
    { "--build=META", "build metadata to attach" } },
  exits = { [0] = "shown", [2] = "a bad version or kind" },
  examples = { "relua version bump 1.2.3 minor", "relua version bump 1.3.0-rc.1 prerelease --preid=rc" },
  run = function(...) return require("relua.versioning").run("bump", ...) end,
}

command {
  name = "version compare", summary = "compare two versions: -1, 0 or 1",
  usage = "relua version compare A B [--pep440]",
  options = { { "--pep440", "Python's order (epochs, pre, post, dev, local) instead of SemVer" } },
  exits = { [0] = "shown", [2] = "a bad version" },
  examples = { "relua version compare 1.0.0-rc.10 1.0.0-rc.9", "relua version compare 1.0.post1 1.0 --pep440" },
  run = function(...) return require("relua.versioning").run("compare", ...) end,
}

command {
  name = "repl", summary = "open the interactive prompt",
  usage = "relua repl",
  description = "Line editing, history, Tab completion, values pretty-printed; the host modules "
    .. "are pre-bound as globals (doc/repl.md). `relua` alone on a terminal does the same.",
  exits = { [0] = "the prompt was left (Ctrl-D, os.exit())" },
  examples = { "relua repl" },
  run = function() return M.repl() end,
}

-- The release engine (lib/relua/release.lua).
command {
  name = "run", summary = "run a release, or continue where it stopped",
  usage = { "relua run RECIPE TICKET [--from=PHASE] [--dry-run] [--json] [--accept-recipe-change]",
    "relua RECIPE TICKET [--from=PHASE] [--dry-run] [--json] [--accept-recipe-change]" },
  description = "Runs the recipe's phases in order for TICKET, skipping those already done; a "
    .. "failed phase halts the release and says how to resume or roll back. A second run on the "
    .. "same ticket while one is under way is refused.",
  options = {
    { "--from=PHASE", "start at PHASE (every phase before it must be done)" },
    { "--dry-run", "print what would run and what relua's primitives would change; change nothing" },
    { "--json", "print the run's summary as JSON on stdout (doc/json.md); the progress goes to stderr" },
    { "--accept-recipe-change", "run although the recipe removed or reordered phases the ticket recorded "
      .. "(or put a new phase before a done one); the change is logged" },
  },
  exits = { [0] = "every phase done, or nothing to do", [1] = M.EXIT_FAILED,
    [2] = M.EXIT_CORRUPT .. ", or the recipe removed or reordered recorded phases (--accept-recipe-change)",
    [3] = M.EXIT_LOCKED .. ", or the recipe's lane is paused (relua controls)", [130] = M.EXIT_INTERRUPTED, [143] = M.EXIT_TERMINATED },
  examples = { "relua run recipes/release.lua 1.4.0", "relua release.lua 1.4.0 --from=publish",
    "relua release.lua 1.4.0 --dry-run" },
  args = { "recipe", "ticket" },
  run = function(...) return require("relua.release").run_command(...) end,
}

command {
  name = "status", summary = "where a ticket's release stands and what to run next",
  usage = "relua status TICKET [--json]",
  description = "The ticket's phases with their status (a failed one with its rc and message), "
    .. "the recorded state values and steps, whether the recipe changed, and the next command.",
  options = { { "--json", "print it as one JSON object (doc/json.md); a ticket never run is {\"status\": \"none\"}, exit 0" } },
  exits = { [0] = "shown", [2] = "no ticket given, an invalid ticket name, no release recorded for it (without --json), or a corrupt state file" },
  examples = { "relua status 1.4.0", "relua status 1.4.0 --json | jq -r .status" },
  args = { "ticket" },
  run = function(...) return require("relua.release").status_command(...) end,
}

command {
  name = "log", summary = "a ticket's audit log",
  usage = "relua log TICKET [--json]",
  description = "The ticket's audit log as written: one logfmt line per event (run, start, done, "
    .. "failed, state, step, revert...).",
  options = { { "--json", "one JSON object per event and line (doc/json.md)" } },
  exits = { [0] = "shown", [2] = "no ticket given, an invalid ticket name, or no release recorded for it" },
  examples = { "relua log 1.4.0", "relua log 1.4.0 | grep event=failed", "relua log 1.4.0 --json | jq -r .event" },
  args = { "ticket" },
  run = function(...) return require("relua.release").log_command(...) end,
}

command {
  name = "list", summary = "every ticket in the ledger and its status",
  usage = "relua list [--json]",
  options = { { "--json", "print a JSON array of tickets (doc/json.md)" } },
  exits = { [0] = "shown (also when no release is recorded)", [2] = M.EXIT_USAGE },
  examples = { "relua list", "relua list --json" },
  run = function(...) return require("relua.release").list_command(...) end,
}

command {
  name = "revert", summary = "undo a ticket's phases, newest first",
  usage = "relua revert TICKET [--recipe=PATH] [--dry-run] [--json]",
  description = "Runs the revert function of every phase that is done, failed or was running, "
    .. "in reverse order; a phase without one is left as it is and said so.",
  options = {
    { "--recipe=PATH", "the recipe to take the reverts from (default: the one the ticket ran)" },
    { "--dry-run", "print what would be reverted; change nothing" },
    { "--json", "print the revert's summary as JSON on stdout (doc/json.md); the progress goes to stderr" },
  },
  exits = { [0] = "reverted, or nothing to revert", [1] = "a revert failed: fix the cause and run it again",
    [2] = "no ticket given, no release recorded, the recipe is gone or invalid",
    [3] = M.EXIT_LOCKED .. ", or every phase left is past the point of no return (nothing published can be undone)",
    [130] = M.EXIT_INTERRUPTED, [143] = M.EXIT_TERMINATED },
  examples = { "relua revert 1.4.0 --dry-run", "relua revert 1.4.0" },
  args = { "ticket" },
  run = function(...) return require("relua.release").revert_command(...) end,
}

-- Delivery controls (lib/relua/control.lua, doc/controls.md).
command {
  name = "pause", summary = "pause a lane's delivery: its releases are refused until an unpause",
  usage = "relua pause --lane LANE --sha SHA --reason REASON [--by WHO] [--ticket TICKET]",
  description = "Records a pause of LANE for the failure REASON on the commit SHA. A pause that "
    .. "restates a failure an unpause already resumed (same lane, SHA and reason) is recorded as "
    .. "ignored and the lane stays resumed; any other failure pauses (rules: doc/controls.md).",
  options = {
    { "--lane LANE", "the lane (default main)" },
    { "--sha SHA", "the full commit id of the failed release" },
    { "--reason REASON", "why, e.g. ci-failed or deploy-failed" },
    { "--by WHO", "who pauses (default $RELUA_BY, else USER@host)" },
    { "--ticket TICKET", "the ticket whose failure this is: the unpause wakes it; the event goes to its audit log" },
  },
  exits = { [0] = "recorded (paused, or ignored with why)", [2] = "a malformed SHA, an empty reason, a bad lane, or a corrupt control record" },
  examples = { "relua pause --lane main --sha $(git rev-parse HEAD) --reason ci-failed" },
  run = function(...) return require("relua.control.commands").pause_command(...) end,
}

command {
  name = "unpause", summary = "resume a paused lane (a recovery) and wake its paused ticket",
  usage = "relua unpause --lane LANE --sha SHA --reason REASON [--by WHO] [--admit MODE] [--no-wake] [--timeout SECONDS]",
  description = "Records a recovery for the pause of SHA and REASON (they must name an open pause), "
    .. "then resumes the ticket whose failure caused it. While the recovery owns the failed SHA, "
    .. "releases of SHAs that descend from it are admitted.",
  options = {
    { "--lane LANE", "the lane (default main)" },
    { "--sha SHA", "the SHA of the pause it resumes" },
    { "--reason REASON", "the reason of the pause it resumes" },
    { "--by WHO", "who unpauses (default $RELUA_BY, else USER@host)" },
    { "--admit MODE", "what the recovery admits: descendants (default), failed (also the failed SHA), any" },
    { "--no-wake", "record the recovery only; do not resume the paused ticket" },
    { "--timeout SECONDS", "stop the wake after SECONDS" },
  },
  exits = { [0] = "recovery recorded (and the woken ticket done)", [1] = "the wake failed: the recovery stays and the lane stays unpaused",
    [2] = "the lane is not paused for that SHA and reason (its state is shown), or bad input" },
  examples = { "relua unpause --lane main --sha 79cbedf6... --reason ci-failed --by alice" },
  run = function(...) return require("relua.control.commands").unpause_command(...) end,
}

command {
  name = "controls", summary = "a lane's current control and its history",
  usage = "relua controls [--lane LANE] [--json]",
  options = { { "--lane LANE", "the lane (default main)" }, { "--json", "print it as one JSON object" } },
  exits = { [0] = "shown", [2] = "a bad lane, or a corrupt control record (its location is named)" },
  examples = { "relua controls", "relua controls --lane main --json" },
  run = function(...) return require("relua.control.commands").controls_command(...) end,
}

command {
  name = "store copy", summary = "copy tickets (state and audit log) into another store",
  usage = "relua store copy --to URL [TICKET...]",
  description = "Copies each TICKET (default: every ticket) from the current store (--store, "
    .. "$RELUA_STORE, else the folder .relua) into the store at URL, e.g. a local ledger into the "
    .. "shared PostgreSQL store. A ticket the target already has, or that a run holds, is not copied.",
  options = {
    { "--to=URL", "the target store: a folder (PATH, folder:PATH) or postgres://..." },
    { "--store=URL", "the store to copy from (default: $RELUA_STORE, else the folder .relua)" },
  },
  exits = { [0] = "every ticket copied", [1] = "some ticket was not copied (each is named)",
    [2] = "no --to, an invalid ticket name or store URL" },
  examples = { "relua store copy --to postgres://relua@db/releases", "relua store copy --to /srv/ledger 1.4.0" },
  run = function(...) return require("relua.release").store_copy_command(...) end,
}

command {
  name = "store migrate", summary = "create or upgrade relua's schema in a PostgreSQL store",
  usage = "relua store migrate [--store=URL]",
  description = "A PostgreSQL store (RELUA_STORE=postgres://...) gets relua's schema on first use. "
    .. "A newer relua may need a newer schema: until it is upgraded, relua refuses the store "
    .. "(exit 2) rather than misread it. This upgrades it, once, for every runner.",
  options = { { "--store=URL", "the store (default: $RELUA_STORE); libpq's PG* variables fill what the URL leaves out" } },
  exits = { [0] = "the schema is this relua's", [1] = "cannot connect, or the upgrade failed (nothing changed)",
    [2] = "usage error, or a schema newer than this relua" },
  examples = { "relua store migrate --store=postgres://relua@db.internal/releases",
    "relua store migrate  # the store in $RELUA_STORE" },
  run = function(...) return require("relua.release.migrate").migrate_command(...) end,
}

-- Recovery playbooks (lib/relua/playbook.lua, lib/relua/playbook/commands.lua, doc/playbooks.md).
local function playbooks(fn)
  return function(...) return require("relua.playbook.commands")[fn](...) end
end

command {
  name = "diagnose", summary = "match a failed ticket's failure to the recovery playbooks",
  usage = "relua diagnose TICKET [--json]",
  description = "Selects the playbooks whose symptom matches the ticket's recorded failure, runs "
    .. "their detection checks (each killed with its process group after its timeout, 30 s by "
    .. "default) and prints the matches, confirmed ones first, with root cause, fix and verify. "
    .. "With no match: the failure (phase, rc, message, output tail) and how to start a playbook "
    .. "from it. Changes nothing. A malformed playbook is reported (file:line) and skipped.",
  options = { { "--json", "print the failure and the matches as JSON" } },
  exits = { [0] = "diagnosed (matches or not)", [2] = "usage error, unknown ticket, or the ticket has not failed" },
  examples = { "relua diagnose 1234", "relua diagnose 1234 --json" },
  args = { "ticket" },
  run = playbooks("diagnose_command"),
}

command {
  name = "recover", summary = "apply a playbook to a failed ticket: fix, verify, resume",
  usage = "relua recover TICKET [--playbook ID] [--yes] [--adhoc] [--dry-run]",
  description = "Takes the ticket's lock for the whole sequence, runs the detection of the best "
    .. "matching playbook (or --playbook ID), shows the plan and asks; then runs the fix, the "
    .. "verify checks, and only when verify passes resumes the release at the playbook's resume "
    .. "phase. Each stage is an audit event (playbook-detect, -fix, -verify, -verified, -failed); "
    .. "the state records the playbook applied. A fix or verify that fails leaves the ticket "
    .. "failed and resumable.",
  options = {
    { "--playbook ID", "apply this playbook (its detection must still confirm)" },
    { "--yes", "do not ask (required without a terminal)" },
    { "--adhoc", "also run the playbook's ad hoc fix commands (otherwise shown, not run)" },
    { "--dry-run", "run the detection and show the plan; change nothing" },
  },
  exits = { [0] = "recovered: the release completed", [1] = "no playbook confirmed, the fix or verify failed, or the resumed release failed",
    [2] = "usage error, or the ticket has not failed", [3] = M.EXIT_LOCKED },
  examples = { "relua recover 1234 --dry-run", "relua recover 1234", "relua recover 1234 --playbook release-verify-race --yes" },
  args = { "ticket" },
  run = playbooks("recover_command"),
}

command {
  name = "playbook list", summary = "the playbooks on the search path",
  usage = "relua playbook list [--recipe PATH]",
  description = "The recipe's playbooks/ folder (with --recipe; else ./playbooks), each folder of RELUA_PLAYBOOKS, "
    .. "and the set shipped with relua; a bad file or a duplicate id is reported and skipped.",
  options = { { "--recipe PATH", "search the playbooks/ folder beside this recipe (default: ./playbooks)" } },
  exits = { [0] = "listed", [2] = "usage error" },
  examples = { "relua playbook list", "relua playbook list --recipe recipes/release.lua" },
  run = playbooks("list_command"),
}

command {
  name = "playbook show", summary = "one playbook: symptom, detection, root cause, fix, verify",
  usage = "relua playbook show ID [--recipe PATH]",
  options = { { "--recipe PATH", "search the playbooks/ folder beside this recipe (default: ./playbooks)" } },
  exits = { [0] = "shown", [2] = "no such playbook" },
  examples = { "relua playbook show release-verify-race" },
  args = { "playbook" },
  run = playbooks("show_command"),
}

command {
  name = "playbook lint", summary = "check playbook files: file:line for every problem",
  usage = "relua playbook lint [PATH...] [--recipe PATH]",
  description = "Checks the given files or folders (default: the search path): bad YAML or Lua, "
    .. "a missing id, an unknown field, a wrong type, a pattern that does not compile, a "
    .. "duplicate id; warns about a free-text symptom that quotes no error line.",
  options = { { "--recipe PATH", "check the playbooks/ folder beside this recipe (default: ./playbooks)" } },
  exits = { [0] = "no problems", [1] = "problems found (printed as file:line: message)", [2] = "no such path" },
  examples = { "relua playbook lint", "relua playbook lint recovery/playbooks" },
  args = { "file" },
  run = playbooks("lint_command"),
}

command {
  name = "playbook new", summary = "write a commented playbook skeleton",
  usage = "relua playbook new ID [--from TICKET] [--yaml] [--dir DIR]",
  description = "Writes DIR/ID.lua (or .yaml): with --from, the symptom is filled in from the "
    .. "ticket's recorded failure and the file goes to the playbooks/ folder beside its recipe.",
  options = {
    { "--from TICKET", "fill the symptom in from this ticket's failure" },
    { "--yaml", "write the YAML template instead of Lua" },
    { "--dir DIR", "the folder to write to (default playbooks/)" },
  },
  exits = { [0] = "written", [2] = "usage error, the file or the id exists, or the ticket has not failed" },
  examples = { "relua playbook new release-db-full --from 1234" },
  args = { "playbook", "ticket" },
  run = playbooks("new_command"),
}

-- For recipe authors.
command {
  name = "init", summary = "start a project: a starter recipe, playbooks/, .luarc.json",
  usage = "relua init [--template=NAME] [DIR]",
  description = "Writes DIR/release.lua copied from a shipped recipe (the template), a "
    .. "playbooks/ folder, a .luarc.json that points the editor (LuaLS) at relua's type "
    .. "definitions, and makes sure .gitignore ignores the ledger folder .relua/. It writes "
    .. "nothing when release.lua, .luarc.json or playbooks/README.md already exists.",
  options = { { "--template=NAME", "the shipped recipe to start from (default release); the templates are the recipes "
    .. "relua ships, and deploy (the deploy release-run, release)" } },
  exits = { [0] = "written", [2] = "a file exists (nothing written), an unknown template, or a usage error" },
  examples = { "relua init", "relua init --template=release myproject" },
  args = { "dir" },
  run = function(...) return require("relua.cli.scaffold").command(...) end,
}

command {
  name = "check", summary = "validate a recipe and its playbooks without running anything",
  usage = "relua check RECIPE [--from=PHASE [--ticket=TICKET]]",
  description = "Loads RECIPE with relua's primitives guarded as in a dry run and lists every "
    .. "problem: unknown keys, bad or duplicate phase names, missing run or revert functions, "
    .. "the problems of its playbooks, and every unreachable --from: the phase each playbook "
    .. "that applies to the recipe resumes at (after the failure it matches, as relua recover "
    .. "would start there), and the --from given (for --ticket, as the run would decide from "
    .. "the ticket's recorded phases).",
  options = { { "--from=PHASE", "also check that PHASE is a phase a run could start from" },
    { "--ticket=TICKET", "check the --from against this ticket: every phase before it must be done (a new ticket: none is)" } },
  exits = { [0] = "valid", [2] = "problems found (each printed on stderr), or the recipe cannot be read" },
  examples = { "relua check release.lua", "relua check release.lua --from=publish --ticket=1.4.0" },
  args = { "recipe" },
  run = function(...) return require("relua.cli.check").command(...) end,
}

command {
  name = "__complete", hidden = true,
  run = function(...) return require("relua.cli.complete").command(M, ...) end,
}

-- ------------------------------------------------------------------ dispatch

-- A table that looks like a recipe: has phases, or is a list of phase-like tables (a
-- recipe that forgot `phases =`, which the engine then reports).
local function recipe_like(t)
  if type(t) ~= "table" then return false end
  if t.phases ~= nil then return true end
  return type(t[1]) == "table" and (t[1].run ~= nil or t[1].name ~= nil)
end

-- Is --help (or -h) among the arguments, before any "--"?
local function wants_help(args)
  for _, a in ipairs(args) do
    if a == "--" then return false end
    if a == "--help" or a == "-h" then return true end
  end
  return false
end

--- Runs a Lua file with arguments. A file that returns a recipe runs as a release.
---@param path string?  nil reads the script from stdin
---@return integer exit status
function M.run_file(path, ...)
  local chunk, err = loadfile(path)
  if not chunk then
    if path then
      local f, why = io.open(path, "r")
      if not f then
        errors.usage("cannot open " .. why,
          "relua runs a Lua script or a recipe: relua FILE [args]; relua help lists the commands.")
      end
      f:close()
      -- run with a ticket, the file is a recipe: one that does not parse is invalid (2)
      require("relua.release").check_script(path, nil, err, ...)
    end
    errors.raise("syntax", err, { exit = 1 })
  end
  _G.print = require("relua.secret").print  -- a script's prints are masked too
  local result = chunk(...)
  if recipe_like(result) then
    -- `relua RECIPE ...` is `relua run RECIPE ...`: its help, and its usage on a usage error
    local help = require "relua.cli.help"
    if wants_help({ ... }) then
      io.stdout:write(help.render(M.commands.run))
      return 0
    end
    errors.usage_hint = errors.usage_hint or help.usage_hint(M.commands.run)
    return require("relua.release").main(result, path, ...)
  end
  if path and select("#", ...) > 0 then
    require("relua.release").check_script(path, result, nil, ...)
  end
  return 0
end

--- The command named by the first one or two words ("store copy" before "store"), and the
--- number of words it took; nil when none is.
---@return relua.Command?, integer?
function M.find(first, second)
  if first == nil then return nil end
  if second ~= nil and M.commands[first .. " " .. second] then
    return M.commands[first .. " " .. second], 2
  end
  if M.commands[first] then return M.commands[first], 1 end
end

--- The two-word commands whose first word is `group`, sorted.
---@return relua.Command[]
function M.group(group)
  local list = {}
  for name, c in pairs(M.commands) do
    if name:sub(1, #group + 1) == group .. " " and not c.hidden then list[#list + 1] = c end
  end
  table.sort(list, function(a, b) return a.name < b.name end)
  return list
end

--- Runs a command: its help when asked for, else its function, with its usage line as the
--- hint of any usage error raised without one (a missing argument prints the usage).
---@param cmd relua.Command
---@param args string[]
---@return integer exit status
function M.dispatch(cmd, args)
  if cmd.hidden then return cmd.run(table.unpack(args)) or 0 end
  local help = require "relua.cli.help"
  if wants_help(args) then
    io.stdout:write(help.render(cmd))
    return 0
  end
  errors.usage_hint = help.usage_hint(cmd)
  return cmd.run(table.unpack(args)) or 0
end

--- `relua FILE args...` or `relua COMMAND args...`
---@return integer exit status
function M.main(first, ...)
  local args = { ... }
  local cmd, words = M.find(first, args[1])
  if cmd then return M.dispatch(cmd, { table.unpack(args, words) }) end
  if first ~= nil and #M.group(first) > 0 then
    -- "relua store" alone: a group of two-word commands.
    local help = require "relua.cli.help"
    if wants_help(args) then
      io.stdout:write(help.render_group(M, first))
      return 0
    end
    errors.usage(args[1] == nil and string.format("relua %s needs a subcommand", first)
      or string.format("unknown command: relua %s %s", first, args[1]), help.group_hint(M, first))
  end
  return M.run_file(first, ...)
end

--- `relua - args...`, or a script piped in: run stdin.
function M.script(_, ...)
  return M.run_file(nil, ...)
end

--- The interactive prompt.
function M.repl()
  return require("relua.repl").run() or 0
end

return M
