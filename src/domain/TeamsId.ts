/**
 * The one key for a Teams user id. Graph names a user by a GUID whose case varies between payloads (the resource path,
 * `resourceData.id`, a presence's `id`, the users list), so every map keyed by a Teams user uses this key.
 */
export const teamsKey = (id: string): string => id.toLowerCase()

/** Whether two Teams user ids name the same user. */
export const sameTeamsUser = (a: string, b: string): boolean => teamsKey(a) === teamsKey(b)
