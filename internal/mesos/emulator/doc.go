// Package emulator is a Mesos agent emulator for the lab: one per lab
// node, it runs tasks as real processes and attaches them to CNI networks
// exactly as the Mesos agent's network/cni isolator does
// (shared/reference/mesos-cni.md), because Mesos itself cannot run here.
//
// # What it reproduces
//
// Configuration (§1): every non-directory file of the config directory is
// parsed as {name, type, ipam{type, routes}, dns}; files that do not
// parse, repeat an earlier name, or whose type or ipam.type is not on the
// plugin search path are skipped (logged); conflists have no type and are
// skipped. Networks are cached by name and the whole directory is
// reloaded on a miss, so files added later are found at launch; an
// unknown network fails with "Unknown CNI network '<name>'".
//
// Launch (§2, §3): NetworkInfos without a name are skipped, a repeated
// name fails ("Attempted to join CNI network '<name>' multiple times"),
// named networks get eth0, eth1, … in order. The task starts as a real
// process in new network, UTS and mount namespaces, held until isolation
// is done; /proc/<pid>/ns/net is bind-mounted on <root>/<cid>/ns; for each
// network, in parallel, args["org.apache.mesos"] = {"network_info": …}
// is injected, the configuration is checkpointed as
// <root>/<cid>/<network>/network.conf (keys sorted, compact, stout
// escaping) and the plugin runs with it as stdin and exactly CNI_COMMAND,
// CNI_CONTAINERID, CNI_PATH (verbatim), CNI_IFNAME, CNI_NETNS and PATH in
// its environment. A non-zero exit fails the launch with Mesos' message
// and everything attached is detached (DEL); otherwise stdout is parsed
// as a 0.1/0.2 result (package mesos) and kept raw in
// <network>/<ifname>/network.info. Then <root>/<cid>/hostname, hosts and,
// when some DNS has nameservers (the plugin's, else
// --default_container_dns, else the host's resolv.conf is used),
// resolv.conf are written; the hostname is set, lo brought up, and the
// three files bind-mounted over /etc/… in the task's mount namespace
// (with nsenter and mount(8); skipped with a warning if they are
// missing). Only then does the task's command run.
//
// Status (§5): TaskStatus.container_status.network_infos copy the
// framework's NetworkInfo (name, labels, groups, port_mappings) with
// ip_addresses replaced: IPv4 without prefix length, IPv6 as returned.
// With no network_infos (host networking) the agent's own address is
// reported.
//
// Kill and cleanup (§6): the task is killed (SIGKILL) and reaped, then
// DEL runs per network with the checkpointed network.conf as stdin and
// CNI_NETNS only while <root>/<cid>/ns is still a live netns bind mount;
// networks without network.conf are skipped. Success removes the
// interface directory; when all networks are done the handle is
// unmounted and <root>/<cid> removed. A failing DEL keeps everything and
// returns Mesos' message; Kill (or Recover) retries.
//
// Recovery (§6.1): Recover reads <root>/* back; an unparseable
// network.info fails it. Containers whose task process is gone are
// unknown orphans and are cleaned up at once; live ones are kept and
// their status reported again. The emulator tells a live task from a
// recycled pid by the pid, start time and boot id it records in
// <root>/<cid>/.emulator.json (with the task's spec and statuses); the
// task's output goes to <root>/<cid>/.stdout and .stderr. These are
// files, which the isolator's directory scan ignores.
//
// Tasks outlive the agent: Close stops the agent's goroutines only, and
// a new Agent on the same root recovers them.
//
// # HTTP API
//
// Served on a unix socket or TCP address (Config.Listen); JSON in and
// out, errors as {"error": "…"}:
//
//	POST /launch          TaskSpec → Container (200; a failed launch is a
//	                      Container with a TASK_FAILED status and "error")
//	                      400 bad body, 409 duplicate task, 503 closed
//	POST /kill            {"container_id": "…"} → Container (200);
//	                      404 unknown; 500 {"error", "container"} when DEL
//	                      failed (call again to retry)
//	GET  /containers      [Container…] not yet destroyed, by id
//	GET  /containers/{id} Container (also completed ones)
//	GET  /state           Mesos agent /state document: frameworks[]
//	                      .executors[].tasks[].statuses[].container_status
//	                      .network_infos, labels as bare arrays there,
//	                      completed tasks under completed_executors and
//	                      completed_frameworks
//	GET  /health          {"status": "ok"}
//
// Container.status and .statuses hold TaskStatus in protobuf JSON (v1
// field names, labels as {"labels":[…]}). The API has no status stream:
// the lab's Marathon emulator polls GET /containers. Go callers in the
// same process may use Agent directly and Subscribe to status updates.
//
// # Deviations from Mesos
//
// Only MESOS containers with a command (no executors, images, nested or
// debug containers); a task's mount namespace has no new root. Both CNI
// flags are required (Mesos accepts neither and then runs host-network
// tasks only). Host-network tasks also get a <root>/<cid> directory,
// holding only the emulator's files. The config directory is read in
// name order (Mesos: directory order), networks of a container are
// handled in interface order (Mesos: hash order). The TASK_FAILED message
// of a failed launch is "Failed to launch container: " followed by the
// isolator's message.
package emulator
