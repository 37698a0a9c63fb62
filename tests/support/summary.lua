-- busted output handler: the plain terminal output, plus the counts written to
-- $RELUA_TEST_COUNTS as "passed failed errors pending" for tests/run-all.sh.
return function(options)
  local busted = require "busted"
  local handler = require("busted.outputHandlers.plainTerminal")(options)
  busted.subscribe({ "suite", "end" }, function()
    local path = os.getenv("RELUA_TEST_COUNTS")
    if path then
      local f = assert(io.open(path, "w"))
      f:write(string.format("%d %d %d %d\n", handler.successesCount, handler.failuresCount,
        handler.errorsCount, handler.pendingsCount))
      f:close()
    end
    return nil, true
  end)
  return handler
end
