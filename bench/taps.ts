/**
 * Measurement taps for the benchmark, installed in the bench process only: they time what the simulators do without
 * changing it. The Graph simulator's delivery POSTs through `webhookClient` (SimWebhookClient.ts); the PBX simulator
 * applies every accepted SetPresence through `SystemModel.setPresence`.
 */
import { performance } from "node:perf_hooks"
import { webhookClient } from "../src/simulators/graph/SimWebhookClient.ts"
import { SystemModel } from "../src/simulators/pbx/SimulatorModel.ts"

export interface WebhookPost {
  /** performance.now() when the POST was started and when its answer had arrived (a 202 without a body). */
  readonly startedAt: number
  readonly answeredAt: number
  readonly status: number
  readonly items: number
}

export interface SetPresenceStamp {
  readonly guid: string
  readonly activity: string
  readonly at: number
}

const presenceResource = "communications/presences/"
const ID_LENGTH = 36

/** The Teams user ids (lower case) of the presence items in a notification body: each item's resource names one. */
const presenceIds = (body: string): Array<string> => {
  const ids: Array<string> = []
  for (let at = body.indexOf(presenceResource); at >= 0; at = body.indexOf(presenceResource, at + presenceResource.length)) {
    const id = body.slice(at + presenceResource.length, at + presenceResource.length + ID_LENGTH)
    if (/^[0-9a-fA-F-]{36}$/.test(id)) ids.push(id.toLowerCase())
  }
  return ids
}

/**
 * Wraps the Graph simulator's webhook client so that every notification POST to `notificationUrl` is timed from the
 * moment Graph's side starts it until the connector's answer arrives, and each Teams user id in it is stamped with the
 * POST's start.
 */
export const tapWebhookPosts = (isNotificationUrl: (url: string) => boolean) => {
  const posts: Array<WebhookPost> = []
  /** Teams user id (lower case) → performance.now() of the latest POST that carried a change for it. */
  const sentAt = new Map<string, number>()
  /** Teams user id (lower case) → performance.now() when the answer to that POST arrived. */
  const answeredAt = new Map<string, number>()
  let recording = false
  const original = webhookClient.post
  webhookClient.post = async (url, post) => {
    const body = post.body
    if (!recording || typeof body !== "string" || !isNotificationUrl(url)) return original(url, post)
    const startedAt = performance.now()
    const ids = presenceIds(body)
    for (const id of ids) {
      sentAt.set(id, startedAt)
      answeredAt.delete(id)
    }
    const response = await original(url, post)
    const answered = performance.now()
    for (const id of ids) if (sentAt.get(id) === startedAt) answeredAt.set(id, answered)
    posts.push({ startedAt, answeredAt: answered, status: response.status, items: ids.length })
    return response
  }
  return {
    posts,
    sentAt,
    answeredAt,
    start: () => {
      recording = true
    },
    stop: () => {
      recording = false
    },
    /** Forgets what was recorded (between scenarios). */
    reset: () => {
      posts.length = 0
      sentAt.clear()
      answeredAt.clear()
    },
    uninstall: () => {
      webhookClient.post = original
    }
  }
}

/** Stamps every SetPresence the PBX simulator accepts, at the moment it applies it (in the websocket message handler). */
export const tapSetPresence = () => {
  const stamps: Array<SetPresenceStamp> = []
  const listeners = new Set<(stamp: SetPresenceStamp) => void>()
  const original = SystemModel.prototype.setPresence
  SystemModel.prototype.setPresence = function(guid, contact, activity, note) {
    const stamp = { guid, activity, at: performance.now() }
    stamps.push(stamp)
    for (const listener of listeners) listener(stamp)
    return original.call(this, guid, contact, activity, note)
  }
  return {
    stamps,
    onStamp: (listener: (stamp: SetPresenceStamp) => void) => {
      listeners.add(listener)
      return () => void listeners.delete(listener)
    },
    uninstall: () => {
      SystemModel.prototype.setPresence = original
    }
  }
}
