/**
 * How the simulated Graph reaches a webhook: one place for a choice the sources leave open. Microsoft Learn documents
 * what Graph sends and how fast it must be answered, not whether it keeps connections open between notifications
 * (UNCONFIRMED, docs/protocol-notes.md). The simulator uses Node's fetch with its default agent: HTTP/1.1 keep-alive
 * and a pool per origin without a connection limit — a POST reuses an idle connection to the endpoint, else opens a
 * new one — as common HTTP clients do by default.
 */

/** One request to a webhook (a notification or the validation handshake), over the pool described above. */
export const webhookFetch = (url: string, init: RequestInit): Promise<Response> => fetch(url, init)
