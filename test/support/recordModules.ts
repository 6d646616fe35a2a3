/**
 * Preloaded with `node --import`: writes the URL of every module the process loads (imported or required), one per
 * line, to the file named by RECORD_MODULES_FILE when the process exits. Tests use it to see which code a command loads.
 */
import { writeFileSync } from "node:fs"
import { registerHooks } from "node:module"

const loaded: Array<string> = []
registerHooks({
  load(url, context, nextLoad) {
    loaded.push(url)
    return nextLoad(url, context)
  }
})
process.on("exit", () => writeFileSync(process.env["RECORD_MODULES_FILE"] ?? "modules.txt", loaded.join("\n")))
