// A semantic-release plugin for relua's make bench: after the notes generator, writes the
// next release (version, type, notes) to the file named by $RELUA_CAPTURE as JSON.
const fs = require('fs')

module.exports = {
  generateNotes (pluginConfig, context) {
    const r = context.nextRelease
    fs.writeFileSync(process.env.RELUA_CAPTURE,
      JSON.stringify({ version: r.version, type: r.type, notes: r.notes, last: context.lastRelease.version || null }))
    return ''
  }
}
