/** What the tests read from the PBX simulator's presence lists. */
import { Effect } from "effect"
import type { DemoHandle } from "../../src/demo/Demo.ts"
import type { PresenceEntry } from "../../src/simulators/pbx/PbxSimulator.ts"

/** The connector's entry (contact `teams:`) in a user's presence list, newest first as phones show it. */
export const teamsEntry = (list: ReadonlyArray<PresenceEntry>): PresenceEntry | undefined =>
  list.find((entry) => entry.contact === "teams:")

/** The activity of the connector's entry for a user of a running demo ("" when cleared, undefined when never set). */
export const teamsActivity = (demo: DemoHandle, guid: string): Effect.Effect<string | undefined> =>
  Effect.map(demo.pbx.presence(guid), (list) => teamsEntry(list)?.activity)
