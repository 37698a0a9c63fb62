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
---@field preflight table?            checks run before the first phase that changes anything
---@field targets table?              the publish targets
---@field secrets string[]?           the secret values the recipe declares (environment variable names)

---@class relua.Phase
---@field name string                 1-64 characters of A-Z a-z 0-9 . _ - (required)
---@field run fun(r: relua.Run)       the phase's work (required)
---@field revert fun(r: relua.Run)?   undoes the phase (`relua revert TICKET`)
---@field irreversible boolean?       true: a point of no return
---@field description string?         a sentence on what it does
---@field preflight table?            checks run before this phase

---@class relua.Playbook
---@field id string                   the playbook's id (`relua recover --playbook ID`)
---@field title string?               one line shown when it matches
---@field description string?
---@field matches table|fun(failure: relua.Failure): boolean?  the symptoms it recognises
---@field steps table[]?              what it does, in order
---@field resume boolean?             resume the run when the steps succeed

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
