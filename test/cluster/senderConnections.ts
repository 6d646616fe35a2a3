/** The PBX connections the desired-presence sender tests give the writer. */
import { Effect, Layer, Option } from "effect"
import type { RequestOutcome } from "../../src/pbx/socket/PbxConnection.ts"
import { PbxConnections } from "../../src/pbx/socket/PbxConnections.ts"
import type { PbxMessage } from "../../src/pbx/socket/PbxMessages.ts"

/**
 * The writer's connections, recording the guid of every SetPresence it starts (`gate.started`, in order; `recorded`
 * after each); while `gate.holding`, their answers are held until `release`.
 */
export const makeGate = (recorded: () => void, options: { readonly holding: boolean }) => {
  const gate = { holding: options.holding, held: [] as Array<() => void>, started: [] as Array<string> }
  const layer = Layer.effect(PbxConnections, Effect.gen(function*() {
    const real = yield* PbxConnections
    return PbxConnections.of({
      ...real,
      get: (pbx) =>
        Effect.map(real.get(pbx), Option.map((connection) => ({
          ...connection,
          requestWith: (message: PbxMessage, onResult: (outcome: RequestOutcome) => void) => {
            if (message.mt !== "SetPresence") return connection.requestWith(message, onResult)
            gate.started.push(String(message["guid"]))
            recorded()
            return connection.requestWith(message, (outcome) => {
              if (gate.holding) gate.held.push(() => onResult(outcome))
              else onResult(outcome)
            })
          }
        })))
    })
  }))
  const release = Effect.sync(() => {
    gate.holding = false
    for (const answer of gate.held.splice(0)) answer()
  })
  return { gate, layer, release }
}
