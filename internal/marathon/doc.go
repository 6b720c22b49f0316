// Package marathon is a client of Marathon's REST API and event stream, the
// edge through which Weft follows Marathon apps, pods, tasks and instances.
//
// The contract is shared/reference/marathon-api.md; section numbers (§) in
// comments refer to it. The package has four parts:
//
//   - Types and decoding (types.go, decode.go): App, Task, Pod, PodStatus,
//     Info, Group, Deployment and the REST wrappers, decoded with unknown
//     fields ignored and null treated as absent. Both networking styles are
//     accepted: the ≤ 1.4 ipAddress / container.docker.network style (§3.2)
//     and the 1.5+ networks style (§3.1). Decode errors are *DecodeError
//     values that name the JSON path of the bad value ("$.apps[0].tasks[1].ports[0]").
//   - A normalised view (network.go, state.go): AppNetworks and PodNetworks
//     give the network attachments (mode, name, labels) of a run spec from
//     either style, TaskAddresses and PodInstanceAddresses the addresses of a
//     running task or pod instance, and the task-state, condition and id
//     helpers (IsTerminalTaskState, InstanceIDFromTaskID, …).
//   - The REST client (client.go, snapshot.go): a list of base URLs with
//     failover (next URL on a connection failure or a 5xx, the last good one
//     remembered), Basic or DC/OS token authentication that survives the
//     leader redirect, per-request timeouts, typed *APIError values, and
//     Snapshot, which reads apps with their tasks and pod statuses into one
//     view keyed by task id (app tasks) and instance id (pod instances).
//   - The event stream (sse.go, events.go, stream.go): an exact
//     text/event-stream frame parser (FrameReader), typed decoding of the
//     events a network manager needs (DecodeEvent; unknown types pass through
//     as *RawEvent), and Stream, which keeps a subscription to /v2/events
//     alive: it follows the standby's 302 itself and re-sends credentials,
//     reconnects after EOF, errors or three silent heartbeat intervals with
//     capped exponential backoff and full jitter, and decouples the socket
//     reader from the consumer with an in-order queue so a slow consumer
//     never makes Marathon drop the connection. After every (re)connect the
//     consumer gets a *Resync marker just before the connection's first
//     event: the subscription is live, so this is the moment to take a
//     Snapshot (§5).
//
// Everything that waits takes a context, every goroutine is owned by the
// context of the call that started it, and time comes from an injectable
// Clock.
package marathon
