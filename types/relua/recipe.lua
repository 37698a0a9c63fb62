---@meta relua.recipe
-- The shapes a recipe author writes: the recipe, its phases, a playbook, and the `r`
-- object a phase gets (its methods are in relua/release/context.lua's relua.Run).
-- Annotate a recipe file with `---@type relua.Recipe` on its returned table, or
-- `return require("relua.recipe").recipe { ... }`-style helpers are not needed: LuaLS
-- checks `---@type relua.Recipe` tables directly.

---@class relua.Recipe
---@field phases relua.Phase[]        the ordered phases (required)
---@field name string?                the recipe's name, shown by `relua status`
---@field description string?         a sentence on what it releases
---@field lane string?                the delivery lane whose controls admit the run
---@field sha (fun(r: relua.Run): string)?  the release's commit id, for admission (default: HEAD)
---@field preflight table?            checks run before the first phase that changes anything
---@field targets table?              the publish targets
---@field secrets string[]?           the secret values the recipe declares (environment variable names)

---@class relua.Phase
---@field name string                 1-64 characters of A-Z a-z 0-9 . _ - (required)
---@field run fun(r: relua.Run)       the phase's work (required)
---@field revert fun(r: relua.Run)?   undoes the phase (`relua revert TICKET`)
---@field irreversible boolean?       true: a point of no return
---@field followup boolean?           true: only tidies up after the release ("released; follow-up failed")
---@field description string?         a sentence on what it does
---@field preflight table?            checks run before this phase

-- A recovery playbook (doc/playbooks.md): a file under playbooks/ returning one (or a list).

-- A matcher: plain text, a Lua pattern ({ match = "..." }), or a test function.
---@alias relua.Matcher string|{match: string}|fun(text: string): boolean

---@class relua.Playbook
---@field id string                   unique across the search path: letters, digits, . _ - (required)
---@field title string?               one line naming the failure
---@field symptom relua.Symptom|string  what must match the recorded failure (all given); free text: the error lines it quotes
---@field detect (relua.Check|string|fun(ctx: relua.PlaybookContext): boolean, string?)[]?  checks that confirm it
---@field detection (relua.Check|string)[]?  the YAML template's name for detect
---@field root_cause string?          why it happens
---@field fix relua.Fix|string|fun(ctx: relua.PlaybookContext)?  what `relua recover` runs
---@field verify (relua.Check|string|fun(ctx: relua.PlaybookContext): boolean, string?)[]?  must pass before the release resumes
---@field resume string|false?        the phase to resume at (default: the failed phase); false: do not resume
---@field tags string[]?
---@field services string[]?
---@field timeout number?             seconds each check may take (default 30)
---@field notes string?

---@class relua.Symptom
---@field phase (string|string[])?    the failed phase (one of)
---@field rc (integer|integer[])?     its exit status (one of)
---@field code (string|string[])?     a structured error's code (one of)
---@field message (relua.Matcher|relua.Matcher[])?  matches the error's message
---@field output (relua.Matcher|relua.Matcher[])?   matches the message, hint or output tail
---@field text string?                free text: matches by the error lines it quotes

---@class relua.Check
---@field run string?                 a command line (YAML: command)
---@field command string?
---@field check (fun(ctx: relua.PlaybookContext): boolean, string?)?  a Lua check instead of a command
---@field expect (integer|string|{code: integer?, output: (relua.Matcher|relua.Matcher[])?}|fun(result: table, ctx: relua.PlaybookContext): boolean)?  default: exit 0
---@field timeout number?             seconds (default: the playbook's, else 30)
---@field name string?                what it checks, shown instead of the command

---@class relua.Fix
---@field run (string|string[]|fun(ctx: relua.PlaybookContext))?  commands, or a function
---@field adhoc string?               shown; run only with `relua recover --adhoc`
---@field describe (string|fun(ctx: relua.PlaybookContext): string)?  what the plan shows for a function fix
---@field bootstrap_script string?    the file the permanent fix belongs in (shown)
---@field bootstrap_change string?    the permanent fix (shown)

-- The ctx a playbook's functions get: the failed ticket's run context (ctx:sh, ctx:run
-- record their output like r:sh) with the failure's fields.
---@class relua.PlaybookContext: relua.Run
---@field rc integer                  the failed phase's exit status
---@field message string              the failure's message
---@field code string?                a structured error's code
---@field tail string?                the last lines of the phase's output
---@field failure relua.Failure
---@field recipe_path string

---@class relua.Failure
---@field rc integer                  the phase's exit status
---@field message string              what failed (secrets masked)
---@field code string?                a structured error's code
---@field hint string?
---@field tail string?                the last lines of the phase's output

---@class relua.Run
---@field ticket string               the ticket being released
---@field phase string?               the phase being run
---@field state table<string, any>    values that survive crashes and re-runs (durable on assignment)
---@field dry_run boolean             true in a dry run
---@field recipe relua.Recipe         the recipe
---@field dir string                  the ledger folder
---@field out string?                 the phase's output file
