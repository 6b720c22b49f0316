// Package emulator is a Marathon API emulator for the lab: Marathon
// cannot run here, so the lab runs this instead, built strictly from
// shared/reference/marathon-api.md and the payloads in
// shared/fixtures/marathon. It schedules apps and pods onto Mesos agents
// (the lab's Mesos agent emulators, reached through the Agent interface)
// and serves Marathon 1.10's REST API and event stream.
//
// # REST API (§1–§3, §6)
//
//	GET  /ping                         "pong" (content negotiated)
//	GET  /v2/info, GET|DELETE /v2/leader
//	GET  /v2/apps[?id&cmd&label&embed] {"apps":[…]} with counts and deployments
//	POST /v2/apps                      201 + the app; 409 if the id exists
//	GET  /v2/apps/{id}                 {"app":{…}} with tasks, counts, lastTaskFailure
//	GET  /v2/apps/{group}/*            {"*":[…]}
//	PUT|PATCH /v2/apps/{id}[?force]    partial update: instances only → scale, else restart
//	DELETE /v2/apps/{id}[?force]
//	POST /v2/apps/{id}/restart[?force]
//	GET|DELETE /v2/apps/{id}/tasks[?host&scale&wipe]
//	DELETE /v2/apps/{id}/tasks/{taskId}[?scale&wipe]
//	GET  /v2/tasks[?status]            app tasks only, with servicePorts
//	POST /v2/tasks/delete[?scale&wipe] {"ids":[…]}
//	HEAD|GET|POST /v2/pods, GET|PUT|DELETE /v2/pods/{id}
//	GET  /v2/pods/::status, /v2/pods/{id}::status
//	DELETE /v2/pods/{id}::instances/{instanceId}[?wipe]
//	GET  /v2/deployments
//
// Apps are written as 1.5+ Marathon writes them (networks, portMappings
// or portDefinitions; never ipAddress, ports or uris; empty optional
// collections omitted as in 1.9+); definitions in the ≤ 1.4 form
// (ipAddress, container.docker.network, docker.portMappings, ports,
// uris) are translated. Validation failures are 422 {"message":"Object
// is not valid","details":[{"path","errors"}]} with accord-style paths
// ("/networks(0)/name"), unparseable bodies 400 "Invalid JSON"; the 404
// bodies are those of §1.3 (GET /v2/pods/{id} wraps its message in JSON,
// as Marathon does). Ids: instances "<app>.instance-<uuid v1>", app tasks
// "<instance>._app.<incarnation>", pod tasks
// "<instance>.<container>.<incarnation>" (≥ 1.8). Tasks carry the
// ipAddresses of the last Mesos status with container_status
// network_infos. Every leader response has X-Marathon-Leader,
// X-Frame-Options, X-XSS-Protection and no-cache headers; write
// operations return Marathon-Deployment-Id; JSON is gzipped for clients
// that accept it.
//
// # Scheduling
//
// An instance is placed on the least loaded agent that has its host
// ports (ties in round-robin order); until one fits it stays Scheduled.
// Host ports come from the agent's range (31000-32000), service ports
// from 10000 up. A task is launched through Agent.Launch with the
// NetworkInfos Marathon sends for a MESOS container: per container
// network its name, labels, one empty IPAddress (protocol IPv4) and the
// port mappings that have a host port (allocated port filled in, one per
// protocol); container/bridge is the CNI network --mesos_bridge_name;
// host networking sends none. A pod instance is one Mesos task group
// sharing one network namespace, emulated as one Mesos task (id: its
// first container's task id) running every container's command, with
// one NetworkInfo set: the pod gets one address, reported for each of
// its container tasks. Tasks also get a DiscoveryInfo (VIP labels plus
// network-scope/network-name), labels, resources and Marathon's main
// environment variables (MARATHON_APP_ID, HOST, PORT0…, PORTS, …, then
// the app's env) through env(1).
//
// Status updates arrive as container snapshots (Agent.Watch, plus the
// results of Launch and Kill); each Mesos status is applied once, by its
// position in the container's history. A change of state emits
// status_update_event (one per Marathon task: per container for pods),
// then instance_changed_event if the instance condition changed.
//
// Relaunch: a task that ends while its instance's goal is Running is
// relaunched in the same instance with the next incarnation — at once
// after a kill, after the app's backoff (backoffSeconds ×
// backoffFactor^(n-1), at most maxLaunchDelaySeconds, n counting the
// failures since the last configuration change) after a failure. A
// launch the agent refuses (no container) counts as TASK_FAILED with the
// agent's error as message; a failed launch reports the agent's
// TASK_FAILED message ("Failed to launch container: …"). Decommissioned
// instances (scale down, delete, kill with wipe or scale) are expunged
// once their task is terminal; an app left short of its target without a
// deployment gets new instances.
//
// Deployments have one action per step: create = StartApplication then
// ScaleApplication (StartPod, ScalePod for pods), instances-only change
// = Scale, any other change or /restart = Restart (new instances first,
// the old ones are decommissioned once the new ones run), delete = Stop
// (app_terminated_event when all instances are gone). A deployment holds
// its run spec: another change answers 409 unless ?force=true, which
// cancels it (deployment_failed).
//
// # Event stream (§4, §6.1)
//
// GET /v2/events needs an Accept header whose value is exactly
// text/event-stream (405 with an HTML body otherwise, as Jetty's
// EventSourceServlet answers). It answers 200, Content-Type
// text/event-stream;charset=UTF-8, Connection: close, no chunking and no
// gzip; subscribes, then broadcasts event_stream_attached (so a client's
// first event is normally its own); writes frames
// "event: <type>\r\ndata: <json>\r\n\r\n"; heartbeats "\r" then "\n"
// every Config.Heartbeat; applies the repeatable event_type filter at
// write time; publishes event_stream_detached when a stream ends. Each
// stream has a backlog of Config.MaxOutstanding events; a full backlog
// closes the connection (≥ 1.8) or, with DropSlowEvents, drops the event
// (≤ 1.7). Events follow the sequences of §6.1 in order; TASK_KILLING is
// never sent (task_killing feature off), health events neither (health
// checks are not run).
//
// # Leader, standby and authentication (§1.1, §1.2)
//
// With Config.LeaderURL the node is a standby: /v2/events answers 302
// with Location <leader><uri>?<query>, everything else is proxied to the
// leader with X-Marathon-Via (502 "Detected proxying loop." or
// "Connection to leader refused." as HTML). With BasicAuth or Token
// every request, /ping and /v2/events included, needs credentials
// ("Authorization: Basic …" or "Authorization: token=<t>"): 401 with an
// HTML body and WWW-Authenticate basic realm="Mesosphere" (acsjwt when
// only a token is configured; DC/OS' exact answer is unverified).
//
// # Deviations
//
// State is in memory; on start, live tasks of the framework whose ids
// look like Marathon's are unknown and killed. No groups, queue,
// versions, health or readiness checks (tasksHealthy is 0), constraints
// or agent partitions (no TASK_UNREACHABLE). DOCKER apps run as the
// Mesos agent emulator runs every task (a command in a MESOS container)
// with the NetworkInfos Marathon would send for Docker (only the name of
// a container network, nothing for bridge). An unknown route answers 500
// {"message":"URI not found"} as the reference's table says. Whether a
// relaunch emits Scheduled before Provisioned is unverified; the
// emulator emits Provisioned only.
package emulator
