/**
 * The AppLogin a simulated PBX sends for its App object: the same fields and order as the real captures
 * (test/fixtures/conformance), with the digest of AppLoginDigest.ts over the `info` text exactly as sent.
 */
import { createHash } from "node:crypto"
import { Redacted } from "effect"
import { loginDigest } from "../../pbx/socket/AppLoginDigest.ts"

const hex32 = (text: string) => createHash("sha256").update(text).digest("hex").slice(0, 32)

/** The app service's name as the App object's URL ends (the `app` of AppLogin and AppInfo, as in the real captures). */
export const appName = (connectUrl: string): string => connectUrl.split("/").filter((part) => part.length > 0).pop() ?? "app"

export const appLoginFrame = (login: {
  readonly connectUrl: string
  readonly domain: string
  readonly pbx: string
  readonly appObject: string
  readonly password: Redacted.Redacted<string>
  readonly unlicensed: boolean
  readonly lics: number | undefined
  readonly challenge: string
}): string => {
  const app = appName(login.connectUrl)
  const info = {
    appobj: login.appObject,
    appdn: login.appObject,
    appurl: login.connectUrl,
    pbx: login.pbx,
    cn: login.appObject,
    unlicensed: login.unlicensed,
    ...(login.lics !== undefined ? { lics: login.lics } : {}),
    apps: []
  }
  const infoText = JSON.stringify(info)
  const fields = {
    app,
    domain: login.domain,
    sip: login.appObject,
    guid: hex32(`${login.domain}/${login.pbx}/${login.appObject}`),
    dn: login.appObject,
    infoText
  }
  const digest = loginDigest(fields, login.challenge, login.password)
  return `{"mt":"AppLogin","sip":${JSON.stringify(fields.sip)},"guid":"${fields.guid}","dn":${
    JSON.stringify(fields.dn)
  },"digest":"${digest}","domain":${JSON.stringify(fields.domain)},"app":${JSON.stringify(app)},"info":${infoText}}`
}

export const redactedPassword = (password: string | Redacted.Redacted<string>): Redacted.Redacted<string> =>
  Redacted.isRedacted(password) ? password : Redacted.make(password)
